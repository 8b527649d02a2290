"""What every input serializer of the API shares."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rest_framework import serializers

UNKNOWN_FIELD = "Unknown field."


class KnownFieldsOnly:
    """Mixed into an input serializer: a body key it has no field for is a 400 naming that key
    (with ``unknown_field_message``), filed beside any other field errors, instead of being
    dropped without a word: a typo such as ``max_parallel_childen`` would otherwise change
    nothing and answer 200. The schema says so (``additionalProperties: false``, see
    ``core.api.docs``)."""

    unknown_field_message = UNKNOWN_FIELD

    def to_internal_value(self, data: Any) -> Any:
        known = set(self.fields)  # type: ignore[attr-defined]
        unknown = sorted(set(data) - known) if isinstance(data, Mapping) else []
        errors = {name: [self.unknown_field_message] for name in unknown}
        try:
            value = super().to_internal_value(data)  # type: ignore[misc]
        except serializers.ValidationError as error:
            if errors and isinstance(error.detail, dict):
                raise serializers.ValidationError({**error.detail, **errors}) from None
            raise
        if errors:
            raise serializers.ValidationError(errors)
        return value
