"""What a reported result may hold: one set of rules, whichever door reports it.

The API parses and documents a report with ``ResultInputSerializer``; the service checks every
caller's ``Result`` (the API's, the test driver's, any later door's) with the same serializer
(``result_errors``), so a rule is written once and answered everywhere with DRF's usual field
errors.
"""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from core.api.fields import INT32_MAX, int32_field
from core.api.serializers import KnownFieldsOnly
from core.json_values import unstorable_reason
from sessions_app import usage
from sessions_app.workflows.types import RESULT_STATUSES, Result

# Reported output is stored whole in the interaction; past this it is a 400.
MAX_OUTPUT_CHARS = 1_000_000


def _output_field(help_text: str) -> serializers.CharField:
    return serializers.CharField(
        max_length=MAX_OUTPUT_CHARS,
        allow_null=True,
        allow_blank=True,
        required=False,
        trim_whitespace=False,
        help_text=help_text,
    )


class ResultInputSerializer(KnownFieldsOnly, serializers.Serializer):
    status = serializers.ChoiceField(choices=RESULT_STATUSES)
    data = serializers.JSONField(allow_null=True, required=False)
    code = int32_field(allow_null=True, required=False, help_text="The command's exit code.")
    error_message = _output_field("What went wrong, for an error.")
    stdout = _output_field("The command's standard output.")
    stderr = _output_field("The command's standard error.")
    duration_ms = int32_field(allow_null=True, required=False, min_value=0, max_value=INT32_MAX)

    def validate_data(self, value: Any) -> Any:
        # The API's parser refuses such a body first; a caller in Python meets it here.
        if (problem := unstorable_reason(value)) is not None:
            raise serializers.ValidationError(problem)
        try:
            usage.of_result_data(value)
        except usage.Malformed as error:
            raise serializers.ValidationError(error.text) from None
        return value


# A caller in Python hands the service values already parsed, as the API's serializer leaves
# them: there the string "1" is no exit code and 3 no output, whatever DRF would make of them.
_PARSED_TYPES: dict[str, type] = {
    "code": int,
    "duration_ms": int,
    "error_message": str,
    "stdout": str,
    "stderr": str,
}


def result_errors(result: Result) -> dict[str, list[str]]:
    """The field errors of ``result`` by the report rules; empty when it may be stored."""
    rules = ResultInputSerializer(data={name: getattr(result, name) for name in _INPUT_FIELDS})
    errors = {} if rules.is_valid() else {k: [str(m) for m in v] for k, v in rules.errors.items()}
    for name, kind in _PARSED_TYPES.items():
        value = getattr(result, name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, kind)):
            errors[name] = [str(rules.fields[name].error_messages["invalid"])]
    return errors


_INPUT_FIELDS = tuple(ResultInputSerializer().fields)
