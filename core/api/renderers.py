"""Renderers beyond JSON, and the choice between them by ``?format=``."""

from __future__ import annotations

import json
from typing import Any

from rest_framework import serializers
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.request import Request


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
