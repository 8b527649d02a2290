"""The API's JSON renderer (orjson) writes what DRF's own would, byte for byte, for every kind
of value the API sends; and falls back to DRF's for what orjson cannot write."""

import datetime as dt
import uuid
from decimal import Decimal

import pytest
from django.utils.translation import gettext_lazy
from rest_framework import renderers
from rest_framework.utils.serializer_helpers import ReturnDict, ReturnList

from core.api.renderers import REPORT_RENDERERS, JSONRenderer

UTC = dt.UTC
PAYLOADS = {
    "session-like": ReturnDict(
        {
            "id": uuid.UUID("12345678-1234-5678-1234-567812345678"),
            "created_at": dt.datetime(2026, 12, 8, 1, 2, 3, 456789, tzinfo=UTC),
            "leased_until": dt.datetime(2026, 12, 8, 1, 2, 3, tzinfo=UTC),
            "local": dt.datetime(2026, 12, 8, 1, 2, 3, tzinfo=dt.timezone(dt.timedelta(hours=2))),
            "naive": dt.datetime(2026, 12, 8, 1, 2, 3),
            "day": dt.date(2026, 12, 8),
            "at": dt.time(4, 5, 6, 789),
            "took": dt.timedelta(seconds=90),
            "cost": Decimal("0.070000"),
            "usage": {"cost_usd": 0.07, "input_tokens": 2**40, "agent_steps": 0},
            "child_session_ids": ReturnList([str(uuid.uuid4()) for _ in range(3)], serializer=None),
            "state": {
                "error": 'RunTests failed: "quoted" \\ back\nslash\ttab \u00e9 \u4e2d \U0001f600'
            },
            "control": "\x00\x01\x1f\x7f",
            "separators": "line\u2028para\u2029end",
            "lazy": gettext_lazy("Not found."),
            "empty": [],
            "nested": [[], {}, [None, True, False]],
            "floats": [0.5, 33.333333333333336, 100.0, -2.25, 1e16],
            "tuple": (1, 2),
            "bytes": b"raw",
        },
        serializer=None,
    ),
    "list": [{"a": 1}, {"b": [1, 2, 3]}],
    "text": "plain",
    "number": 7,
}


@pytest.mark.parametrize("name", PAYLOADS)
def test_it_writes_what_drfs_renderer_writes(name):
    data = PAYLOADS[name]
    assert JSONRenderer().render(data) == renderers.JSONRenderer().render(data)


def test_line_and_paragraph_separators_are_escaped_as_drf_does():
    written = JSONRenderer().render({"text": "a\u2028b\u2029c"})
    assert written == b'{"text":"a\\u2028b\\u2029c"}'


def test_what_orjson_cannot_write_falls_back_to_drf():
    # Keys that are not text, and integers past 64 bits.
    for data in ({1: "one", None: "none"}, {"huge": 2**70}):
        assert JSONRenderer().render(data) == renderers.JSONRenderer().render(data)


def test_an_indent_asked_for_is_drfs_indented_json():
    data = {"a": [1, 2]}
    accepted = "application/json; indent=4"
    written = JSONRenderer().render(data, accepted_media_type=accepted)
    assert written == renderers.JSONRenderer().render(data, accepted_media_type=accepted)
    assert b"\n    " in written


def test_nothing_renders_as_an_empty_body():
    assert JSONRenderer().render(None) == b""


def test_a_value_neither_can_write_is_refused_as_drf_refuses_it():
    with pytest.raises(TypeError):
        JSONRenderer().render({"set": object()})


def test_the_api_and_the_report_use_it(settings):
    assert settings.REST_FRAMEWORK["DEFAULT_RENDERER_CLASSES"][0] == (
        "core.api.renderers.JSONRenderer"
    )
    assert REPORT_RENDERERS[0] is JSONRenderer


def test_an_api_answer_is_written_by_it(api, context_session):
    response = api.get(f"/api/sessions/{context_session.pk}/")
    assert response.status_code == 200
    assert isinstance(response.accepted_renderer, JSONRenderer)
    assert response.content == renderers.JSONRenderer().render(response.data)


def test_a_small_float_is_spelled_otherwise_and_reads_back_the_same():
    import json

    data = {"cost_usd": 1e-05}
    assert JSONRenderer().render(data) == b'{"cost_usd":0.00001}'
    assert json.loads(JSONRenderer().render(data)) == json.loads(
        renderers.JSONRenderer().render(data)
    )
