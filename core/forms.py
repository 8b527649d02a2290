"""Form fields the admin's pages share."""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.forms.fields import InvalidJSONInput

from core.json_values import TOO_DEEP, unstorable_reason


class StorableJSONFormField(forms.JSONField):
    """Django's JSON form field, refusing what the API's parser refuses (``core.json_values``)
    with a form error, where Django's own would raise: text nested deeper than the stack is a
    RecursionError, and a value holding an unpaired surrogate or nested deeply cannot be shown
    again in the page that reports the error."""

    def to_python(self, value: Any) -> Any:
        try:
            converted = super().to_python(value)
        except RecursionError:
            raise ValidationError(TOO_DEEP, code="too_deep") from None
        if (problem := unstorable_reason(converted)) is not None:
            raise ValidationError(problem, code="unstorable")
        return converted

    def bound_data(self, data: Any, initial: Any) -> Any:
        if self.disabled or data is None:
            return super().bound_data(data, initial)
        # The page shows back what was typed unless it parses to a storable value: the parsed
        # value of a refused one may not survive being rendered again.
        try:
            parsed = json.loads(data, cls=self.decoder)
        except (json.JSONDecodeError, RecursionError):
            return InvalidJSONInput(data)
        return InvalidJSONInput(data) if unstorable_reason(parsed) is not None else parsed

    def prepare_value(self, value: Any) -> Any:
        if isinstance(value, InvalidJSONInput):
            return value
        if unstorable_reason(value) is not None:
            # A value stored before its checks existed: escaped, so the page can be encoded.
            return json.dumps(value, ensure_ascii=True, cls=self.encoder)
        return super().prepare_value(value)

    def has_changed(self, initial: Any, data: Any) -> bool:
        try:
            return super().has_changed(initial, data)
        except (ValidationError, RecursionError):
            return True
