"""Requests are read as UTF-8 only: no client picks the codec Django decodes a request with.

These go through ``config.wsgi.application``, the object gunicorn serves, because Django
decodes parameters of the Content-Type header while it builds the request, before any
middleware could refuse it."""

from __future__ import annotations

import io
import json
import time
from typing import Any

import pytest
from django.core.signals import request_finished, request_started
from django.db import close_old_connections

from config.middleware import (
    CONTENT_ENCODING,
    EXTENDED_PARAMETER,
    RequestEncodingGuard,
    encoding_refusal,
)
from config.wsgi import application
from core.charsets import not_utf8

FORM = "application/x-www-form-urlencoded"
MULTIPART = "multipart/form-data; boundary=BOUNDARY"


def call(
    app, path: str, body: bytes = b"", content_type: str = "", **headers: str
) -> tuple[int, dict[str, str], bytes]:
    """One request straight through a WSGI app: (status, headers, body)."""
    environ: dict[str, Any] = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "SERVER_NAME": "testserver",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": io.StringIO(),
        "CONTENT_LENGTH": str(len(body)),
        "CONTENT_TYPE": content_type,
        **{f"HTTP_{name.upper()}": value for name, value in headers.items()},
    }
    answered: dict[str, Any] = {}

    def start_response(status: str, response_headers: list[tuple[str, str]], *args: Any):
        answered["status"], answered["headers"] = int(status.split()[0]), dict(response_headers)

    content = b"".join(app(environ, start_response))
    return answered["status"], answered["headers"], content


def multipart(field: str, value: bytes) -> bytes:
    return (
        b"--BOUNDARY\r\n"
        + f'Content-Disposition: form-data; name="{field}"\r\n\r\n'.encode()
        + value
        + b"\r\n--BOUNDARY--\r\n"
    )


@pytest.mark.parametrize("charset", ["ascii", "iso-8859-1", "utf-16", "punycode", "bz2_codec"])
@pytest.mark.parametrize("content_type", [FORM, MULTIPART])
def test_an_admin_login_whose_form_is_not_utf8_is_a_400(charset, content_type):
    status, headers, body = call(
        application,
        "/admin/login/",
        b"username=a&password=b",
        f"{content_type}; charset={charset}",
    )

    assert status == 400
    assert headers["Content-Type"] == "text/plain; charset=utf-8"
    assert body.decode() == not_utf8(charset)


@pytest.mark.parametrize("charset", ["punycode", "latin-1", "no-such-codec"])
def test_api_json_in_another_charset_is_a_400_in_json(charset):
    status, headers, body = call(
        application, "/api/projects/", b'{"name": "x"}', f"application/json; charset={charset}"
    )

    assert status == 400
    assert headers["Content-Type"] == "application/json"
    assert json.loads(body) == {"detail": not_utf8(charset)}


@pytest.mark.parametrize(
    "parameter", ["charset*=punycode''abc", "charset*=no-such''x", "charset*0*=utf-8''a"]
)
def test_rfc_2231_parameters_are_refused_before_django_decodes_them(parameter):
    # Django would decode the first with punycode and raise (a 500) on the second while
    # building the request.
    status, _, body = call(application, "/admin/login/", b"", f"{FORM}; {parameter}")

    assert status == 400
    assert body.decode() == EXTENDED_PARAMETER


@pytest.mark.parametrize("coding", ["gzip", "deflate", "br", "gzip, identity"])
def test_a_compressed_body_is_a_415(coding):
    status, _, body = call(
        application,
        "/api/projects/",
        b"\x1f\x8b",
        "application/json",
        CONTENT_ENCODING=coding,
    )

    assert status == 415
    assert json.loads(body) == {"detail": CONTENT_ENCODING.format(value=json.dumps(coding))}


def test_a_punycode_form_of_300_kb_is_refused_at_once():
    # Decoded as punycode, such a body kept a worker busy for seconds (quadratic time).
    value = b"a" * 150_000 + b"-" + b"b" * 150_000
    started = time.monotonic()

    status, _, _ = call(
        application,
        "/admin/login/",
        multipart("username", value),
        f"{MULTIPART}; charset=punycode",
    )

    assert status == 400
    assert time.monotonic() - started < 2


@pytest.mark.parametrize(
    ("content_type", "content_encoding"),
    [
        ("application/json", ""),
        ("application/json; charset=utf-8", ""),
        ("application/json; charset=UTF8", "identity"),
        ('application/json; charset="utf-8"', ""),
        (MULTIPART, ""),
        ("", ""),
    ],
)
def test_utf8_requests_pass_through(content_type, content_encoding):
    assert encoding_refusal(content_type, content_encoding) is None
    calls = []

    def inner(environ, start_response):
        calls.append(environ["PATH_INFO"])
        start_response("204 No Content", [])
        return [b""]

    status, _, _ = call(
        RequestEncodingGuard(inner),
        "/api/x/",
        b"{}",
        content_type,
        **({"CONTENT_ENCODING": content_encoding} if content_encoding else {}),
    )

    assert (status, calls) == (204, ["/api/x/"])


def test_the_json_parser_reads_utf8_only_whoever_calls_it(api):
    # The in-process test client builds requests without the WSGI guard: the parser refuses
    # other charsets itself.
    response = api.post(
        "/api/projects/", b'{"name": "x"}', content_type="application/json; charset=punycode"
    )

    assert response.status_code == 400
    assert response.json() == {"detail": not_utf8("punycode")}


@pytest.fixture
def without_connection_signals():
    """The WSGI app closes database connections around each request; outside a test that
    uses the database, that close is all the database access there is, and it is refused."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


def test_a_utf8_request_reaches_django(without_connection_signals):
    status, _, body = call(
        application, "/api/no-such-route/", b"{}", "application/json; charset=utf-8"
    )

    assert status == 404
    assert json.loads(body) == {"detail": "Not found."}
