"""What every list filter of the API shares: a django-filter ``FilterSet`` whose bad values
are answered with DRF's usual texts, and whose empty values are refused.

The filters were DRF serializers before; clients and tests know their texts, so the form
fields here answer the same ones. Each filter's schema is written beside it
(``documented_as``), as the serializer fields showed them: the documented parameters did not
change either.
"""

from __future__ import annotations

from typing import Any, TypeVar

from django import forms
from django_filters import rest_framework as filters
from drf_spectacular.plumbing import build_choice_description_list
from drf_spectacular.utils import extend_schema_field

EMPTY_FILTER = "This filter cannot be empty: leave it out to list everything."
# DRF's texts for the same mistakes.
INVALID_UUID = "Must be a valid UUID."
INVALID_CHOICE = '"%(value)s" is not a valid choice.'
TOO_LONG = "Ensure this field has no more than %(limit_value)d characters."
BLANK = "This field may not be blank."

F = TypeVar("F", bound=filters.Filter)


class FilterForm(forms.Form):
    """DRF reads ``?status=`` as no filter at all, and so would django-filter, so a client
    that meant one would get every row; the schema says a filter has at least one character,
    and so does this form. A value only spaces, which DRF trims to nothing, is blank."""

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        for name, field in self.fields.items():
            values = self.data.getlist(name)
            if "" in values:
                # The one error for this parameter, whatever else its value was.
                self._errors[name] = self.error_class([EMPTY_FILTER])
                cleaned.pop(name, None)
            elif isinstance(field, forms.CharField) and field.strip and _only_spaces(values):
                # DRF trims such a value to nothing, and refuses it as blank.
                self.add_error(name, BLANK)
        return cleaned


def _only_spaces(values: list[str]) -> bool:
    # The last value is the one a form field reads, as DRF's did.
    return bool(values) and not values[-1].strip()


class ScopedFilterSet(filters.FilterSet):
    class Meta:
        form = FilterForm
        fields: list[str] = []


def documented_as(schema: dict[str, Any], filter_: F) -> F:
    """``filter_``, shown in the schema as the query parameter ``schema`` describes (what
    the serializer field it replaced showed: a value has at least one character)."""
    return extend_schema_field(schema)(filter_)


def uuid_filter(field_name: str, help_text: str) -> filters.UUIDFilter:
    return documented_as(
        {"type": "string", "format": "uuid", "description": help_text},
        # Not stripped: DRF's UUID field refuses spaces around an id, and so does this one.
        filters.UUIDFilter(
            field_name=field_name, strip=False, error_messages={"invalid": INVALID_UUID}
        ),
    )


def choice_filter(choices: list[tuple[str, str]]) -> filters.ChoiceFilter:
    return documented_as(
        {
            "type": "string",
            "enum": [value for value, _ in choices],
            "minLength": 1,
            "description": build_choice_description_list(choices),
        },
        filters.ChoiceFilter(choices=choices, error_messages={"invalid_choice": INVALID_CHOICE}),
    )


def char_filter(max_length: int) -> filters.CharFilter:
    return documented_as(
        {"type": "string", "minLength": 1, "maxLength": max_length},
        filters.CharFilter(max_length=max_length, error_messages={"max_length": TOO_LONG}),
    )
