"""The API's JSON renderer, renderers beyond JSON, and the choice between them by
``?format=``."""

from __future__ import annotations

import json
from typing import Any

import orjson
from rest_framework import renderers, serializers
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.renderers import BaseRenderer
from rest_framework.request import Request
from rest_framework.utils.encoders import JSONEncoder

# What orjson hands back for DRF's encoder to turn into JSON: datetimes (DRF writes UTC with
# a "Z"), and dataclasses (DRF refuses them, so the API never starts sending them).
_PASSED_BACK = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS
_LINE_SEPARATORS = (("\u2028".encode(), b"\\u2028"), ("\u2029".encode(), b"\\u2029"))


class JSONRenderer(renderers.JSONRenderer):
    """DRF's compact JSON, written by orjson: the same text but for how a float is spelled
    (``1e-05`` is written ``0.00001``) and NaN, which DRF refuses and orjson writes as
    ``null``. Encoding a run's answer of 15,000 child ids took 2.2 ms with the standard
    library and takes 0.1 ms (docs/performance.md). Indented JSON (``Accept:
    application/json; indent=4``), and whatever orjson cannot write (keys that are not text,
    integers past 64 bits), are DRF's own."""

    _default = JSONEncoder().default

    def render(
        self, data: Any, accepted_media_type: str | None = None, renderer_context: Any = None
    ) -> bytes:
        plain = self.compact and not self.ensure_ascii
        if (
            data is None
            or not plain
            or self.get_indent(accepted_media_type, renderer_context or {})
        ):
            return super().render(data, accepted_media_type, renderer_context)
        try:
            written = orjson.dumps(data, default=self._default, option=_PASSED_BACK)
        except orjson.JSONEncodeError:
            return super().render(data, accepted_media_type, renderer_context)
        # As DRF does: JSON that is also JavaScript, whose strings cannot hold these two.
        for raw, escaped in _LINE_SEPARATORS:
            if raw in written:
                written = written.replace(raw, escaped)
        return written


class MarkdownRenderer(BaseRenderer):
    """A text the view made (a str) as ``text/markdown``; an error's body as JSON text."""

    media_type = "text/markdown"
    format = "md"
    charset = "utf-8"

    def render(
        self, data: Any, accepted_media_type: str | None = None, renderer_context: Any = None
    ) -> bytes:
        if isinstance(data, str):
            return data.encode(self.charset)
        return json.dumps(data).encode(self.charset)


class FormatParameter(BaseContentNegotiation):
    """``?format=json`` (the default) or ``?format=md``; anything else is a 400 naming the
    parameter, not the 404 DRF answers for a format it has no renderer for."""

    def select_renderer(
        self, request: Request, renderers: list[BaseRenderer], format_suffix: str | None = None
    ) -> tuple[BaseRenderer, str]:
        wanted = request.query_params.get("format") or "json"
        for renderer in renderers:
            if renderer.format == wanted:
                return renderer, renderer.media_type
        known = " or ".join(renderer.format for renderer in renderers)
        raise serializers.ValidationError({"format": [f"Use {known}."]})

    def select_parser(self, request: Request, parsers: list[Any]) -> Any:
        return parsers[0] if parsers else None


REPORT_RENDERERS = [JSONRenderer, MarkdownRenderer]
