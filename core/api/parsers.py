"""The one request parser the API takes: JSON that every supported database can store."""

from __future__ import annotations

import codecs

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser, get_encoding
from rest_framework.utils import json

from core.json_values import unstorable_reason

TOO_DEEP = "JSON is nested too deeply."


class StorableJSONParser(JSONParser):
    """DRF's JSON parser, minus what it lets through that a database or the renderer would
    choke on later as a 500: NUL characters and unpaired surrogates (PostgreSQL and UTF-8
    refuse them), numbers that overflow to infinity, and nesting deep enough to exhaust the
    stack. (Bodies past ``DATA_UPLOAD_MAX_MEMORY_SIZE`` never get here: DRF reads JSON
    through ``request.body``, which enforces it.)"""

    def parse(self, stream, media_type=None, parser_context=None):
        encoding = get_encoding(parser_context or {})
        try:
            text = codecs.decode(stream.read(), encoding)
            data = json.loads(text, parse_constant=json.strict_constant)
        except (ValueError, UnicodeDecodeError) as error:
            raise ParseError(f"JSON parse error - {error}") from None
        except RecursionError:
            raise ParseError(TOO_DEEP) from None
        problem = unstorable_reason(data)
        if problem is not None:
            raise ParseError(problem)
        return data
