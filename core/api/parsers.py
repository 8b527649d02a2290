"""The one request parser the API takes: UTF-8 JSON that every supported database can store."""

from __future__ import annotations

from typing import Any

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser, get_encoding
from rest_framework.utils import json

from core.charsets import is_utf8, not_utf8
from core.json_values import MAX_DEPTH, TOO_DEEP, unstorable_reason


class StorableJSONParser(JSONParser):
    """DRF's JSON parser, minus what it lets through that a database or the renderer would
    choke on later as a 500: NUL characters and unpaired surrogates (PostgreSQL and UTF-8
    refuse them), numbers that overflow to infinity, and nesting past ``MAX_DEPTH`` (deep
    enough values exhaust the stack). A problem inside a member of a body that is an object is
    filed under that member's name, as DRF files field errors.

    Only UTF-8 is read: DRF would decode with whatever codec the request's charset names, and
    some (``punycode``) take quadratic time. (Bodies past ``DATA_UPLOAD_MAX_MEMORY_SIZE`` never
    get here: DRF reads JSON through ``request.body``, which enforces it.)"""

    def parse(self, stream, media_type=None, parser_context=None) -> Any:
        encoding = get_encoding(parser_context or {})
        if not is_utf8(encoding):
            raise ParseError(not_utf8(encoding))
        try:
            data = json.loads(stream.read().decode("utf-8"), parse_constant=json.strict_constant)
        except (ValueError, UnicodeDecodeError) as error:
            raise ParseError(f"JSON parse error - {error}") from None
        except RecursionError:
            raise ParseError(TOO_DEEP) from None
        _refuse_unstorable(data)
        return data


def _refuse_unstorable(data: Any) -> None:
    if not isinstance(data, dict):
        # The body itself is one more level around the values it carries.
        if (problem := unstorable_reason(data, max_depth=MAX_DEPTH + 1)) is not None:
            raise ParseError(problem)
        return
    if (problem := unstorable_reason(list(data))) is not None:
        raise ParseError(problem)
    errors = {
        name: [problem]
        for name, value in data.items()
        if (problem := unstorable_reason(value)) is not None
    }
    if errors:
        raise ParseError(errors)
