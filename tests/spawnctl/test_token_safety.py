"""The runner guards its token: plain http only to this machine, requests only to the origin
it was given (no foreign ``next`` link, no redirect followed), and a token that can be kept off
the command line (``--token-file``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from spawnctl import cli
from spawnctl.api import Api, ApiError, Redirected

REPO = Path(__file__).resolve().parents[2]
SID = "11111111-1111-1111-1111-111111111111"
SESSION = {"id": SID, "type": "ComponentTestSessions", "status": "active", "attempt": 1}


@pytest.fixture(autouse=True)
def no_server_env(monkeypatch):
    for name in ("SPAWNCTL_TOKEN", "SPAWNCTL_TOKEN_FILE", "SPAWNCTL_URL", "SPAWNCTL_INSECURE_HTTP"):
        monkeypatch.delenv(name, raising=False)


class Server:
    """``cli.Api`` answered by ``handler`` over a MockTransport; what was asked, with what."""

    def __init__(self, monkeypatch, handler=None) -> None:
        self.requests: list[httpx.Request] = []
        self.made: list[tuple[str, str]] = []
        self.handler = handler or (lambda request: httpx.Response(200, json=SESSION))

        def make(url: str, token: str, **kwargs) -> Api:
            self.made.append((url, token))
            return Api(url, token, transport=httpx.MockTransport(self._record), **kwargs)

        monkeypatch.setattr(cli, "Api", make)

    def _record(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.handler(request)


# Plain http only to loopback ----------------------------------------------------------------


def _command(name: str, tmp_path: Path) -> list[str]:
    """Each command that talks to the server, with what it needs besides a URL."""
    return {
        "run": ["run", SID, "--repo", str(tmp_path)],
        "work": ["work", SID, "--repo", str(tmp_path)],
        "status": ["status", SID],
        "import": ["import", "--repo", str(tmp_path), "--project", "p"],
        "mcp": ["mcp"],
    }[name]


@pytest.mark.parametrize("command", ["run", "work", "status", "import", "mcp"])
@pytest.mark.parametrize(
    "url",
    [
        "http://server:8000",
        "http://10.0.0.5",
        "http://[fe80::1]:8000/api/",
        "http://127.0.0.1.evil.example",
        "http://localhost.evil.example",
        "http://127.0.0.1@evil.example",
    ],
)
def test_plain_http_elsewhere_than_this_machine_is_refused_before_any_request(
    monkeypatch, tmp_path, capsys, command, url
):
    server = Server(monkeypatch)

    code = cli.main([*_command(command, tmp_path), "--url", url, "--token", "t"])

    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith("spawnctl: http://") and err.count("\n") == 1
    assert "the API token would travel in clear text" in err
    assert "Use an https:// URL, or give --insecure-http" in err
    assert "SPAWNCTL_INSECURE_HTTP=1" in err
    assert server.made == [] and server.requests == []


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8000",
        "http://127.3.2.1",
        "http://localhost:8000/api/",
        "http://LocalHost.",
        "http://[::1]:8000",
        "https://server.example",
        "https://10.0.0.5:8443/api",
    ],
)
def test_https_anywhere_and_plain_http_to_this_machine_are_taken(url):
    assert cli.server_url(url) == url.rstrip("/").removesuffix("/api")


def test_insecure_http_lets_plain_http_go_elsewhere(monkeypatch, capsys):
    server = Server(monkeypatch)

    assert cli.main(["status", SID, "--url", "http://server:8000", "--insecure-http"]) == 2
    assert cli.NO_TOKEN in capsys.readouterr().err  # past the URL, to the missing token

    assert (
        cli.main(["status", SID, "--url", "http://server:8000", "--token", "t", "--insecure-http"])
        == 0
    )
    assert server.made == [("http://server:8000", "t")]
    assert str(server.requests[0].url) == f"http://server:8000/api/sessions/{SID}/"


@pytest.mark.parametrize(
    ("value", "taken"), [("1", True), ("true", True), ("0", False), ("", False)]
)
def test_insecure_http_may_be_set_in_the_environment(monkeypatch, value, taken):
    monkeypatch.setenv("SPAWNCTL_INSECURE_HTTP", value)
    args = cli.build_parser().parse_args(["status", SID])
    assert args.insecure_http is taken


@pytest.mark.parametrize(
    "url", ["ftp://server", "server:8000", "file:///etc/passwd", "ws://127.0.0.1:8000", "http://"]
)
def test_a_url_that_is_neither_http_nor_https_is_refused(monkeypatch, capsys, url):
    server = Server(monkeypatch)

    code = cli.main(["status", SID, "--url", url, "--token", "t", "--insecure-http"])

    assert code == 2
    assert capsys.readouterr().err == (
        f"spawnctl: {url} is not a server URL: it must start with https:// (or http://)\n"
    )
    assert server.made == []


def test_the_real_command_refuses_plain_http_to_another_host():
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPAWNCTL_")}
    done = subprocess.run(
        [sys.executable, "-m", "spawnctl.cli", "status", SID, "--token", "t"],
        cwd=REPO,
        env={**env, "SPAWNCTL_URL": "http://server.invalid:8000"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stderr.startswith("spawnctl: http://server.invalid:8000 is plain http to ")
    assert "clear text" in done.stderr and "Traceback" not in done.stderr


# The token goes only to the origin it was given ---------------------------------------------


def _paged(first_next: str):
    """Page 1 links to ``first_next``; any page 2 is the last."""

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.params.get("page") == "2":
            return httpx.Response(200, json={"results": [{"id": 2}], "next": None})
        return httpx.Response(
            200, json={"summary": {"total": 2}, "results": [{"id": 1}], "next": first_next}
        )

    return handler


def _api(handler, url: str = "http://server:8000") -> tuple[Api, list[httpx.Request]]:
    seen: list[httpx.Request] = []

    def record(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return handler(request)

    return Api(url, "secret", transport=httpx.MockTransport(record)), seen


@pytest.mark.parametrize(
    "link",
    [
        "http://evil.example:9/api/sessions/?page=2",
        "https://server:8000/api/sessions/?page=2",  # another scheme
        "http://server:8001/api/sessions/?page=2",  # another port
        "http://server/api/sessions/?page=2",  # port 80, not 8000
        "http://server:8000@evil.example/api/sessions/?page=2",
        "//evil.example/api/sessions/?page=2",
    ],
)
@pytest.mark.parametrize("read", ["projects", "interactions", "components", "children"])
def test_a_next_link_to_another_origin_is_refused_never_requested(link, read):
    api, seen = _api(_paged(link))

    with pytest.raises(ApiError) as raised:
        {
            "projects": api.projects,
            "interactions": lambda: api.interactions(SID),
            "components": lambda: api.components("p"),
            "children": lambda: api.children(SID),
        }[read]()

    assert raised.value.detail.startswith("The server sent a link to another origin (")
    assert raised.value.detail.endswith("); the token is sent only to http://server:8000")
    # The token left for the server it was given, and nowhere else.
    assert len(seen) == 1
    assert [(r.url.host, r.url.port) for r in seen] == [("server", 8000)]
    assert seen[0].headers["Authorization"] == "Token secret"


@pytest.mark.parametrize(
    ("url", "same", "other"),
    [
        # The default port written out or left out, the case of scheme and host: one origin.
        (
            "https://server",
            "https://server:443/api/projects/?page=2",
            "https://server:444/api/projects/?page=2",
        ),
        (
            "http://server:8000",
            "HTTP://SERVER:8000/api/projects/?page=2",
            "http://server/api/projects/?page=2",
        ),
        (
            "http://[::1]:8000",
            "http://[::1]:8000/api/projects/?page=2",
            "http://[::2]:8000/api/projects/?page=2",
        ),
        # A link without an origin is the server's own, under its root (not under /api/).
        ("http://server:8000", "/api/projects/?page=2", "//server:8001/api/projects/?page=2"),
    ],
)
def test_a_next_link_is_followed_to_the_same_origin_only(url, same, other):
    api, seen = _api(_paged(same), url=url)

    assert api.projects() == [{"id": 1}, {"id": 2}]
    assert seen[1].url.path == "/api/projects/" and seen[1].url.params["page"] == "2"
    assert _origin_of(seen[1].url) == _origin_of(seen[0].url)

    api, seen = _api(_paged(other), url=url)
    with pytest.raises(ApiError, match="another origin"):
        api.projects()
    assert len(seen) == 1


def _origin_of(url: httpx.URL) -> tuple:
    return url.scheme, url.host, url.port or {"http": 80, "https": 443}[url.scheme]


def _redirect(status: int, location: str):
    return lambda request: httpx.Response(status, headers={"Location": location})


@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_a_redirect_is_never_followed_and_says_where_to_point_the_runner(status):
    api, seen = _api(_redirect(status, f"https://server/api/sessions/{SID}/"), "http://server")

    with pytest.raises(Redirected) as raised:
        api.get_session(SID)

    assert raised.value.status == status
    assert raised.value.detail == (
        f"the server redirects to https://server/api/sessions/{SID}/; use --url https://server"
    )
    assert len(seen) == 1  # not followed: the token went nowhere else
    assert api.client.follow_redirects is False


@pytest.mark.parametrize(
    ("location", "detail"),
    [
        # Relative, under a prefix: the root the same route lives under.
        (
            f"/spawn/api/sessions/{SID}/",
            f"the server redirects to http://server:8000/spawn/api/sessions/{SID}/; "
            "use --url http://server:8000/spawn",
        ),
        # Somewhere else altogether: where it points, no --url to guess.
        ("https://login.example/sso", "the server redirects to https://login.example/sso"),
    ],
)
def test_a_redirect_names_the_root_it_moves_to_when_there_is_one(location, detail):
    api, _ = _api(_redirect(302, location))
    with pytest.raises(Redirected) as raised:
        api.get_session(SID)
    assert raised.value.detail == detail


def test_a_post_redirected_is_an_error_of_one_try():
    api, seen = _api(_redirect(307, "https://server:8000/api/sessions/s/release/"))
    with pytest.raises(Redirected, match=r"use --url https://server:8000$"):
        api.release("s", runner="me")
    assert len(seen) == 1


def test_a_runner_pointed_at_http_that_redirects_to_https_is_told_the_url(monkeypatch, capsys):
    Server(monkeypatch, _redirect(301, f"https://host/api/sessions/{SID}/"))

    code = cli.main(["status", SID, "--url", "http://host", "--token", "t", "--insecure-http"])

    assert code == 2
    assert capsys.readouterr().err == (
        f"spawnctl: the server redirects to https://host/api/sessions/{SID}/; "
        "use --url https://host\n"
    )


# --token-file -----------------------------------------------------------------------------


def _token_file(tmp_path: Path, text: str, mode: int = 0o600, name: str = "token") -> Path:
    path = tmp_path / name
    path.write_text(text)
    path.chmod(mode)
    return path


def test_the_token_is_read_from_the_first_line_of_a_file(monkeypatch, tmp_path, capsys):
    server = Server(monkeypatch)
    path = _token_file(tmp_path, "\ufeff  tok-123 \r\nsecond line\n")

    assert cli.main(["status", SID, "--token-file", str(path)]) == 0

    assert server.made == [("http://127.0.0.1:8000", "tok-123")]
    assert server.requests[0].headers["Authorization"] == "Token tok-123"
    assert capsys.readouterr().err == ""


def test_the_token_file_may_come_from_the_environment(monkeypatch, tmp_path):
    server = Server(monkeypatch)
    monkeypatch.setenv("SPAWNCTL_TOKEN_FILE", str(_token_file(tmp_path, "from-file\n")))

    assert cli.main(["status", SID]) == 0
    assert server.made[0][1] == "from-file"


@pytest.mark.parametrize(
    ("given", "environment", "used"),
    [
        (["--token", "flag"], {"SPAWNCTL_TOKEN": "env"}, "flag"),
        (["--token", "flag", "--token-file", "FLAGFILE"], {}, "flag"),
        (["--token-file", "FLAGFILE"], {"SPAWNCTL_TOKEN": "env"}, "flag-file"),
        (["--token-file", "FLAGFILE"], {"SPAWNCTL_TOKEN_FILE": "ENVFILE"}, "flag-file"),
        ([], {"SPAWNCTL_TOKEN": "env", "SPAWNCTL_TOKEN_FILE": "ENVFILE"}, "env"),
        ([], {"SPAWNCTL_TOKEN_FILE": "ENVFILE"}, "env-file"),
        ([], {}, None),
    ],
)
def test_the_token_is_the_first_given_of_flag_flag_file_env_env_file(
    tmp_path, given, environment, used
):
    files = {
        "FLAGFILE": str(_token_file(tmp_path, "flag-file\n", name="flag")),
        "ENVFILE": str(_token_file(tmp_path, "env-file\n", name="env")),
    }
    args = cli.build_parser().parse_args(["status", SID, *(files.get(a, a) for a in given)])
    environ = {name: files.get(value, value) for name, value in environment.items()}

    assert cli.api_token(args, environ) == used


def test_help_says_the_order_tokens_are_taken_in(capsys):
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["status", "--help"])
    shown = " ".join(capsys.readouterr().out.split())
    assert "--token-file PATH" in shown
    assert (
        "the first given of --token, --token-file, $SPAWNCTL_TOKEN, $SPAWNCTL_TOKEN_FILE is used"
        in shown
    )


@pytest.mark.parametrize(
    ("make", "why"),
    [
        (lambda tmp: tmp / "missing", "no such file"),
        (lambda tmp: _token_file(tmp, ""), "its first line holds no token"),
        (lambda tmp: _token_file(tmp, "  \nlater-token\n"), "its first line holds no token"),
        (lambda tmp: tmp, "cannot read it: Is a directory"),
        (lambda tmp: _write_bytes(tmp / "binary", b"\xff\xfe\x00tok"), "is not a text file"),
    ],
)
@pytest.mark.parametrize("given_by", ["--token-file", "SPAWNCTL_TOKEN_FILE"])
def test_a_token_file_that_gives_no_token_is_bad_usage(
    monkeypatch, tmp_path, capsys, make, why, given_by
):
    server = Server(monkeypatch)
    path = make(tmp_path)
    if given_by == "--token-file":
        argv = ["status", SID, "--token-file", str(path)]
    else:
        monkeypatch.setenv("SPAWNCTL_TOKEN_FILE", str(path))
        argv = ["status", SID]

    assert cli.main(argv) == 2

    assert capsys.readouterr().err == f"spawnctl: {given_by} {path}: {why}\n"
    assert server.made == []


def _write_bytes(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644])
def test_a_token_file_others_may_read_is_used_with_a_warning(monkeypatch, tmp_path, capsys, mode):
    server = Server(monkeypatch)
    path = _token_file(tmp_path, "tok\n", mode=mode)

    assert cli.main(["status", SID, "--token-file", str(path)]) == 0

    assert server.made[0][1] == "tok"
    assert capsys.readouterr().err == (
        f"spawnctl: warning: the token file {path} can be read by others "
        f"(permissions {mode:04o}); chmod 600 {path} keeps it yours\n"
    )


class _Recording(BaseHTTPRequestHandler):
    seen: list[tuple[str, str | None]] = []

    def do_GET(self) -> None:
        type(self).seen.append((self.path, self.headers.get("Authorization")))
        body = json.dumps(SESSION).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def test_the_real_command_sends_a_token_it_read_from_a_file_never_on_its_command_line(tmp_path):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recording)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    path = _token_file(tmp_path, "file-token-42\n")
    argv = [sys.executable, "-m", "spawnctl.cli", "status", SID, "--token-file", str(path)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPAWNCTL_")}
    try:
        done = subprocess.run(
            argv,
            cwd=REPO,
            env={**env, "SPAWNCTL_URL": f"http://127.0.0.1:{server.server_port}"},
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        server.shutdown()
        server.server_close()

    assert done.returncode == 0, done.stderr
    assert _Recording.seen == [(f"/api/sessions/{SID}/", "Token file-token-42")]
    assert not any("file-token-42" in word for word in argv)  # what ps would show
    assert "active, attempt 1" in done.stdout
