"""The one request parser the API takes: JSON that every supported database can store."""

from __future__ import annotations

import codecs
import math
from typing import Any

from django.conf import settings
from rest_framework import status
from rest_framework.exceptions import APIException, ParseError
from rest_framework.parsers import JSONParser, get_encoding
from rest_framework.utils import json

NUL_IN_STRING = "JSON strings cannot contain the NUL character (\\u0000)."
LONE_SURROGATE = "JSON strings cannot contain unpaired surrogates (\\ud800-\\udfff)."
NOT_FINITE = "JSON numbers must be finite."
TOO_DEEP = "JSON is nested too deeply."


class RequestTooLarge(APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "The request body is too large."
    default_code = "request_too_large"


def _has_lone_surrogate(text: str) -> bool:
    return any("\ud800" <= char <= "\udfff" for char in text)


def _rejection(value: Any) -> str | None:
    """Why a parsed JSON document cannot be stored, or None. Walks without recursion."""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return NUL_IN_STRING
            if _has_lone_surrogate(item):
                return LONE_SURROGATE
        elif isinstance(item, float):
            if not math.isfinite(item):
                return NOT_FINITE
        elif isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return None


class StorableJSONParser(JSONParser):
    """DRF's JSON parser, plus what it lets through and a database or the renderer would
    choke on later as a 500: NUL characters and unpaired surrogates (PostgreSQL and UTF-8
    refuse them), numbers that overflow to infinity, nesting deep enough to exhaust the
    stack, and bodies past ``DATA_UPLOAD_MAX_MEMORY_SIZE`` (DRF reads JSON from the stream
    and so skips Django's own check)."""

    def parse(self, stream, media_type=None, parser_context=None):
        encoding = get_encoding(parser_context or {})
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        raw = stream.read() if limit is None else stream.read(limit + 1)
        if limit is not None and len(raw) > limit:
            raise RequestTooLarge()
        try:
            text = codecs.decode(raw, encoding)
            data = json.loads(text, parse_constant=json.strict_constant)
        except (ValueError, UnicodeDecodeError) as error:
            raise ParseError(f"JSON parse error - {error}") from None
        except RecursionError:
            raise ParseError(TOO_DEEP) from None
        problem = _rejection(data)
        if problem is not None:
            raise ParseError(problem)
        return data
