"""The bulk route's parser: the API's JSON rules with a larger body limit of its own."""

from __future__ import annotations

import io
from typing import Any

from django.core.exceptions import RequestDataTooBig
from rest_framework.parsers import BaseParser

from core.api.parsers import StorableJSONParser

# 5,000 rows is a normal import; at the global DATA_UPLOAD_MAX_MEMORY_SIZE (2.5 MB) that
# leaves about 500 bytes a row, which long descriptions overrun. 10 MiB holds 5,000 rows of
# 2,000 bytes and still bounds what one request keeps in memory.
BULK_MAX_BODY_BYTES = 10 * 1024 * 1024


class BulkJSONParser(BaseParser):
    """``StorableJSONParser`` with ``BULK_MAX_BODY_BYTES`` in place of the global limit.

    Not a ``JSONParser`` subclass on purpose: DRF hands those ``request.body``, which applies
    the global limit before any parser runs; this one reads the stream itself, at most one
    byte past its own limit.
    """

    media_type = "application/json"

    def parse(self, stream, media_type=None, parser_context=None) -> Any:
        request = (parser_context or {}).get("request")
        declared = request.META.get("CONTENT_LENGTH") if request is not None else None
        try:
            declared_length = int(declared or 0)
        except ValueError:
            declared_length = 0
        if declared_length > BULK_MAX_BODY_BYTES:
            raise RequestDataTooBig("Request body exceeded the bulk route's limit.")
        body = stream.read(BULK_MAX_BODY_BYTES + 1)
        if len(body) > BULK_MAX_BODY_BYTES:
            raise RequestDataTooBig("Request body exceeded the bulk route's limit.")
        return StorableJSONParser().parse(io.BytesIO(body), media_type, parser_context)
