"""The command line's own rules: what it needs, its exit codes, and what it does not import."""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from spawnctl import cli
from spawnctl.api import Api

REPO = Path(__file__).resolve().parents[2]
SID = "11111111-1111-1111-1111-111111111111"


def git_repo(path: Path) -> Path:
    """``path`` made a git working copy: each child runs in a worktree of one by default."""
    subprocess.run(["git", "init", "-q", str(path)], check=True, capture_output=True)
    return path


def test_spawnctl_needs_neither_django_nor_the_apps():
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    probe = (
        "import sys\n"
        "import spawnctl, spawnctl.cli, spawnctl.run, spawnctl.work, spawnctl.progress\n"
        "spawnctl.cli.build_parser()\n"
        "loaded = {m.split('.')[0] for m in sys.modules}\n"
        "print(sorted(loaded & {'django', 'rest_framework', 'sessions_app', "
        "'components_app', 'config'}))\n"
    )
    ran = subprocess.run(
        [sys.executable, "-c", probe], cwd=REPO, env=env, capture_output=True, text=True
    )
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.strip() == "[]"


def test_the_console_script_is_installed():
    scripts = importlib.metadata.entry_points(group="console_scripts")
    assert [s.value for s in scripts if s.name == "spawnctl"] == ["spawnctl.cli:main"]


@pytest.fixture
def no_server_env(monkeypatch):
    monkeypatch.delenv("SPAWNCTL_TOKEN", raising=False)
    monkeypatch.delenv("SPAWNCTL_URL", raising=False)


def test_no_token_is_bad_usage(no_server_env, tmp_path, capsys):
    assert cli.main(["run", SID, "--repo", str(tmp_path)]) == 2
    assert cli.NO_TOKEN in capsys.readouterr().err


def test_the_token_and_url_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("SPAWNCTL_TOKEN", "from-env")
    monkeypatch.setenv("SPAWNCTL_URL", "http://elsewhere:9")
    args = cli.build_parser().parse_args(["status", SID])
    assert (cli.api_token(args), args.url) == ("from-env", "http://elsewhere:9")
    args = cli.build_parser().parse_args(["status", SID, "--url", "http://h:1", "--token", "x"])
    assert (cli.api_token(args), args.url) == ("x", "http://h:1")


def test_run_defaults(no_server_env, tmp_path):
    args = cli.build_parser().parse_args(["run", SID, "--repo", str(tmp_path)])
    assert (args.jobs, args.lease_seconds) == (4, cli.DEFAULT_LEASE_SECONDS)
    assert args.runner == f"{socket.gethostname()}-{os.getpid()}"


@pytest.mark.parametrize(
    "bad",
    [
        ["run", SID],  # no --repo
        ["run", SID, "--repo", ".", "--jobs", "0"],
        ["run", SID, "--repo", ".", "--lease-seconds", "0"],
        ["run", SID, "--repo", ".", "--lease-seconds", "86401"],
        ["work", SID, "--repo", ".", "--jobs", "many"],
        ["status"],
        ["launch", SID],
    ],
)
def test_bad_arguments_exit_2(bad, capsys):
    with pytest.raises(SystemExit) as exited:
        cli.build_parser().parse_args(bad)
    assert exited.value.code == 2


def test_a_repo_that_is_not_a_directory_is_bad_usage(tmp_path, capsys):
    missing = tmp_path / "nowhere"
    assert cli.main(["run", SID, "--repo", str(missing), "--token", "t"]) == 2
    assert f"--repo {missing} is not a directory" in capsys.readouterr().err


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # closed again before it is asked


def test_a_server_that_stays_unreachable_is_waited_for_then_exit_2(tmp_path, capsys):
    port = _closed_port()
    started = time.monotonic()
    code = cli.main(
        [
            "run",
            SID,
            "--repo",
            str(git_repo(tmp_path)),
            "--token",
            "t",
            "--url",
            f"http://127.0.0.1:{port}",
            "--server-timeout",
            "1.5",
        ]
    )
    took = time.monotonic() - started

    assert code == 2
    assert 1.5 <= took < 10
    err = capsys.readouterr().err
    assert re.search(
        rf"spawnctl: the server at http://127\.0\.0\.1:{port} was unreachable for \d+ s: ", err
    )
    assert "ConnectError" in err and "refused a request" not in err


def test_run_and_work_wait_five_minutes_for_the_server_by_default(tmp_path):
    for command in ("run", "work"):
        args = cli.build_parser().parse_args([command, SID, "--repo", str(tmp_path)])
        assert args.server_timeout == 300
    assert cli.build_parser().parse_args(["status", SID]).__dict__.get("server_timeout") is None


def _listing(*rows: dict, count: int | None = None, status: int = 200, body=None):
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if status != 200:
            return httpx.Response(status, json=body)
        return httpx.Response(
            200, json={"count": len(rows) if count is None else count, "results": list(rows)}
        )

    return Api("http://server", "t", transport=httpx.MockTransport(handler)), seen


def _row(pk: str, name: str | None, created: str = "2026-01-01T00:00:00Z") -> dict:
    return {"id": pk, "component": {"name": name} if name else None, "created_at": created}


A = "abcd1234-5678-4000-8000-000000000001"
B = "abcd1234-9999-4000-8000-000000000002"


def test_a_full_session_id_is_used_as_it_is():
    api, seen = _listing()
    assert cli.resolve_session_id(api, A.upper()) == A
    assert cli.resolve_session_id(api, A.replace("-", "")) == A
    assert seen == []


def test_a_short_id_names_the_one_session_it_starts():
    api, seen = _listing(_row(A, "Cart"))

    assert cli.resolve_session_id(api, " abcd1234 ") == A
    assert seen[0].url.path == "/api/sessions/"
    assert seen[0].url.params["id_prefix"] == "abcd1234"
    assert seen[0].url.params["page_size"] == "11"


def test_a_short_id_that_matches_nothing_is_bad_usage():
    api, _ = _listing()
    with pytest.raises(cli.UsageError, match=r"^No session matches abcd9$"):
        cli.resolve_session_id(api, "abcd9")


def test_an_ambiguous_short_id_names_the_matches_oldest_first():
    api, _ = _listing(
        _row(B, None, "2026-01-02T00:00:00Z"), _row(A, "Cart", "2026-01-01T00:00:00Z")
    )
    with pytest.raises(cli.UsageError) as raised:
        cli.resolve_session_id(api, "abcd1234")
    assert str(raised.value) == (
        f"Session id abcd1234 is ambiguous; it matches {A} (Cart), {B} (session {B})"
    )


def test_more_matches_than_are_named_say_so():
    rows = [_row(f"abcd1234-0000-4000-8000-0000000000{n:02d}", f"C{n:02d}") for n in range(11)]
    api, _ = _listing(*rows, count=40)
    with pytest.raises(cli.UsageError) as raised:
        cli.resolve_session_id(api, "abcd")
    text = str(raised.value)
    assert text.endswith("(C09) and more") and "C10" not in text


def test_a_server_that_ignores_the_filter_never_names_another_session():
    api, _ = _listing(_row("ffff0000-0000-4000-8000-000000000001", "Elsewhere"))
    with pytest.raises(cli.UsageError, match=r"^No session matches abcd$"):
        cli.resolve_session_id(api, "abcd")


def test_a_value_that_cannot_start_an_id_is_bad_usage_with_the_servers_reason():
    why = "Must be the start of a session id: 4 to 31 of its hexadecimal digits, hyphens allowed."
    api, _ = _listing(status=400, body={"id_prefix": [why]})
    with pytest.raises(cli.UsageError) as raised:
        cli.resolve_session_id(api, "abc")
    assert str(raised.value) == f"Session id abc: {why}"


def _project_with(children: list[dict], monkeypatch) -> list[httpx.Request]:
    """A server whose project has the component ``shop`` with ``children``."""
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path == "/api/components/":
            parent = request.url.params.get("parent_component")
            rows = children if parent == "c1" else [{"id": "c1", "module_name": "shop"}]
            return httpx.Response(200, json={"results": rows, "next": None})
        return httpx.Response(201, json={"id": SID, "type": "ContextTestingSessions"})

    monkeypatch.setattr(
        cli,
        "Api",
        lambda url, token, **kw: Api(url, token, transport=httpx.MockTransport(handler), **kw),
    )
    return seen


@pytest.mark.parametrize(
    ("children", "why"),
    [
        ([], "shop is not a context: it has no child components"),
        (
            [{"id": "c2", "module_name": "shop.a", "excluded": True}],
            "shop is not a context: every one of its child components is excluded",
        ),
    ],
)
def test_a_component_without_children_to_test_is_not_run_and_no_session_is_made(
    monkeypatch, tmp_path, capsys, children, why
):
    seen = _project_with(children, monkeypatch)

    code = cli.main(
        [
            "run",
            "--project",
            "p",
            "--context",
            "shop",
            "--token",
            "t",
            "--repo",
            str(git_repo(tmp_path)),
        ]
    )

    assert code == 1
    assert capsys.readouterr().err == f"spawnctl: {why}\n"
    assert [r.method for r in seen] == ["GET", "GET"]
    assert seen[1].url.params["parent_component"] == "c1"


def test_a_child_without_the_excluded_field_counts_as_included(monkeypatch, tmp_path):
    seen = _project_with([{"id": "c2", "module_name": "shop.a"}], monkeypatch)
    monkeypatch.setattr(cli, "_drive", lambda *args: (cli.Outcome("complete"), None))

    code = cli.main(
        [
            "run",
            "--project",
            "p",
            "--context",
            "shop",
            "--token",
            "t",
            "--repo",
            str(git_repo(tmp_path)),
        ]
    )

    assert code == 0
    assert [(r.method, r.url.path) for r in seen][-1] == ("POST", "/api/sessions/")


def test_a_repo_that_is_not_a_directory_is_refused_before_a_session_is_made(
    monkeypatch, tmp_path, capsys
):
    seen = _project_with([{"id": "c2", "module_name": "shop.a"}], monkeypatch)
    missing = tmp_path / "nowhere"

    code = cli.main(
        ["run", "--project", "p", "--context", "shop", "--repo", str(missing), "--token", "t"]
    )

    assert code == 2
    assert f"--repo {missing} is not a directory" in capsys.readouterr().err
    assert seen == []


# A value that would print a line of its own, and one that would clear the screen.
FORGED = "x\n12:00:00 Session x is complete"
CLEAR = "\x1b[2J"
FORGED_SHOWN = "x\\u000a12:00:00 Session x is complete"
CLEAR_SHOWN = "\\u001b[2J"


def _answering(monkeypatch, handler) -> None:
    monkeypatch.setattr(
        cli,
        "Api",
        lambda url, token, **kw: Api(url, token, transport=httpx.MockTransport(handler), **kw),
    )


def _forged_lines_stay_whole(out: str) -> None:
    assert "\x1b" not in out
    assert "12:00:00 Session x is complete" in out
    for line in out.splitlines():
        assert "Session x is complete" not in line or FORGED_SHOWN in line, line


def test_status_shows_each_server_value_on_its_one_line(monkeypatch, capsys):
    context = {
        "id": SID,
        "type": "ContextTestingSessions",
        "status": f"failed{FORGED}",
        "attempt": 2,
        "component": {"name": f"Shop{FORGED}{CLEAR}", "module_name": f"shop{CLEAR}"},
        "runner": f"laptop{FORGED}",
        "leased_until": "2026-01-01T00:00:00Z",
        "state": {"error": f"stopped{FORGED}{CLEAR}"},
        "child_session_ids": ["c"],
    }
    child = {
        "id": "c",
        "status": f"failed{CLEAR}",
        "attempt": 1,
        "component": {"name": f"Cart{FORGED}"},
        "failure_reason": f"Finalize failed{FORGED}{CLEAR}",
    }

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/children/"):
            summary = {"total": 1, f"[bold red]failed{FORGED}": 1}
            return httpx.Response(200, json={"summary": summary, "results": [child]})
        return httpx.Response(200, json=context)

    _answering(monkeypatch, handler)
    monkeypatch.setenv("COLUMNS", "400")  # rich wraps nothing: every line is one it wrote

    assert cli.main(["status", SID, "--token", "t"]) == 0

    out = capsys.readouterr().out
    _forged_lines_stay_whole(out)
    for shown in (
        f"Shop{FORGED_SHOWN}{CLEAR_SHOWN} (shop{CLEAR_SHOWN})",
        f"failed{FORGED_SHOWN}, attempt 2",
        f"by laptop{FORGED_SHOWN} until 2026-01-01T00:00:00Z",
        f"stopped{FORGED_SHOWN}{CLEAR_SHOWN}",
        f"1 [bold red]failed{FORGED_SHOWN}",  # a summary key is no markup either
        f"Cart{FORGED_SHOWN}",
        f"Finalize failed{FORGED_SHOWN}{CLEAR_SHOWN}",
        f"failed{CLEAR_SHOWN}",
    ):
        assert shown in out, shown


def test_an_error_from_the_server_is_one_line(monkeypatch, capsys):
    _answering(
        monkeypatch, lambda request: httpx.Response(400, json={"detail": f"No{FORGED}{CLEAR}"})
    )

    assert cli.main(["status", SID, "--token", "t"]) == 1

    assert capsys.readouterr().err == f"spawnctl: No{FORGED_SHOWN}{CLEAR_SHOWN}\n"


def test_a_run_that_ends_says_the_servers_reason_on_one_line(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(
        cli, "_drive", lambda *args: (cli.Outcome("failed", f"Finalize failed{FORGED}"), None)
    )
    _answering(monkeypatch, lambda request: httpx.Response(200, json={"id": SID}))

    assert cli.main(["run", SID, "--repo", str(git_repo(tmp_path)), "--token", "t"]) == 1

    assert capsys.readouterr().err == f"Session {SID} is failed: Finalize failed{FORGED_SHOWN}\n"


def _import(monkeypatch, tmp_path, answer: httpx.Response, *flags: str) -> int:
    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps({"components": [{"module_name": "shop", "name": "Shop"}]}))
    _answering(monkeypatch, lambda request: answer)
    repo, given = str(tmp_path), str(manifest)
    return cli.main(
        ["import", "--repo", repo, "--project", "p", "--manifest", given, "--token", "t", *flags]
    )


def test_the_import_plan_shows_each_server_value_on_its_one_line(monkeypatch, tmp_path, capsys):
    actions = [
        {"action": "create", "module_name": "shop"},
        {"action": "update", "module_name": f"shop.a{FORGED}{CLEAR}", "changes": [f"n{FORGED}"]},
        {
            "action": "update",
            "module_name": "shop.b",
            "changes": ["name"],
            "before": {f"k{FORGED}": "old"},
            "after": {f"k{FORGED}": f"new{FORGED}"},
        },
    ]
    answer = httpx.Response(200, json={"actions": actions})

    assert _import(monkeypatch, tmp_path, answer, "--dry-run") == 0

    out = capsys.readouterr().out
    assert "\x1b" not in out
    assert out.splitlines() == [
        "action  module_name",
        "create  shop",
        f"update  shop.a{FORGED_SHOWN}{CLEAR_SHOWN}  (n{FORGED_SHOWN})",
        "update  shop.b  (name)",
        # The answer's text is made printable as it is read, then shown as JSON.
        f'          k{FORGED_SHOWN}: "old" -> "new{FORGED_SHOWN.replace(chr(92), chr(92) * 2)}"',
        "1 to create, 2 to update, 0 unchanged, 0 to delete (dry run: nothing was written)",
    ]


def test_an_import_refused_shows_the_servers_reasons_on_one_line_each(
    monkeypatch, tmp_path, capsys
):
    refused = {"components": {"0": {f"name{CLEAR}": [f"Too long{FORGED}"]}}}

    assert _import(monkeypatch, tmp_path, httpx.Response(400, json=refused)) == 1

    assert capsys.readouterr().out.splitlines() == [
        f"row 0 (shop): name{CLEAR_SHOWN}: Too long{FORGED_SHOWN}",
        "Nothing imported: 1 bad row.",
    ]


def test_status_shows_the_childrens_counts_and_coverage_as_lines(monkeypatch, capsys):
    context = {"id": SID, "type": "ContextTestingSessions", "status": "active", "attempt": 1}
    summary = {
        "total": 11,
        "active": 0,
        "stalled": 0,
        "complete": 11,
        "failed": 0,
        "cancelled": 0,
        "coverage": {"lines_total": 1780, "lines_covered": 833, "line_coverage": 46.7},
    }

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/children/"):
            return httpx.Response(200, json={"summary": summary, "results": []})
        return httpx.Response(200, json=context)

    _answering(monkeypatch, handler)
    monkeypatch.setenv("COLUMNS", "200")

    assert cli.main(["status", SID, "--token", "t"]) == 0

    out = capsys.readouterr().out
    assert "11 total, 0 active, 0 stalled, 11 complete, 0 failed, 0 cancelled" in out
    assert "46.7% of lines (833 of 1780)" in out
    assert "{" not in out
    assert "mutation" not in out


def test_status_shows_the_childrens_mutation_score(monkeypatch, capsys):
    context = {"id": SID, "type": "ContextTestingSessions", "status": "active", "attempt": 1}
    summary = {
        "total": 2, "active": 0, "stalled": 0, "complete": 2, "failed": 0, "cancelled": 0,
        "coverage": {"lines_total": 10, "lines_covered": 9, "line_coverage": 90.0},
        "mutation": {"caught": 11, "survived": 4, "mutation_score": 73.3},
    }  # fmt: skip

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/children/"):
            return httpx.Response(200, json={"summary": summary, "results": []})
        return httpx.Response(200, json=context)

    _answering(monkeypatch, handler)
    monkeypatch.setenv("COLUMNS", "200")

    assert cli.main(["status", SID, "--token", "t"]) == 0

    assert "73.3% of mutants caught (11 of 15)" in capsys.readouterr().out


def test_a_subdirectory_of_a_git_working_copy_is_refused_for_worktrees_saying_why(tmp_path, capsys):
    top = git_repo(tmp_path / "mono")
    (top / "pkg").mkdir()

    code = cli.main(["run", SID, "--repo", str(top / "pkg"), "--token", "t"])

    assert code == 2
    err = capsys.readouterr().err
    assert f"--repo {top / 'pkg'} is inside the git working copy {top.resolve()}" in err
    assert "--isolation shared" in err


def test_include_with_a_manifest_is_bad_usage(tmp_path, capsys):
    manifest = tmp_path / "rows.json"
    manifest.write_text("[]")
    argv = ["import", "--repo", str(tmp_path), "--project", "p", "--manifest", str(manifest)]

    assert cli.main([*argv, "--include", "pkg.__main__", "--token", "t"]) == 2
    assert "--include keeps what a scan leaves out" in capsys.readouterr().err


def test_import_reads_a_go_module_as_go_and_sends_its_rows(monkeypatch, tmp_path, capsys):
    (tmp_path / "go.mod").write_text("module example.com/x\n")
    (tmp_path / "store").mkdir()
    (tmp_path / "store" / "cache.go").write_text("package store\n\nfunc Get() int { return 1 }\n")
    sent = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(json.loads(request.content))
        return httpx.Response(
            200, json={"created": 2, "updated": 0, "unchanged": 0, "deleted": 0, "actions": []}
        )

    _answering(monkeypatch, handler)
    argv = ["import", "--repo", str(tmp_path), "--project", "p", "--token", "t"]

    assert cli.main(argv) == 0

    (body,) = sent
    assert [row["module_name"] for row in body["components"]] == ["store", "store.cache"]
    assert "Imported 2 rows: 2 created" in capsys.readouterr().out


def _go_module(tmp_path):
    (tmp_path / "go.mod").write_text("module example.com/x\n")
    (tmp_path / "store").mkdir()
    (tmp_path / "store" / "cache.go").write_text("package store\n\nfunc Get() int { return 1 }\n")


IMPORTED = {"created": 2, "updated": 0, "unchanged": 0, "deleted": 0, "actions": []}


def test_import_with_conventions_sets_the_languages_settings_first(monkeypatch, tmp_path, capsys):
    _go_module(tmp_path)
    sent = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append((request.method, request.url.path, json.loads(request.content)))
        return httpx.Response(200, json=IMPORTED if "bulk" in request.url.path else {})

    _answering(monkeypatch, handler)
    argv = ["import", "--repo", str(tmp_path), "--project", "p", "--token", "t", "--conventions"]

    assert cli.main(argv) == 0

    (method, path, settings), (_, bulk, _) = sent
    assert (method, path, bulk) == ("PATCH", "/api/projects/p/", "/api/components/bulk/")
    assert settings == {
        "test_path_template": "{source_dir}/{source_stem}_test.go",
        "test_command_template": "go test {test_dir}",
        "coverage_command_template": 'out={report_file}; go test -coverprofile="$out" {test_dir}',
        "coverage_report_format": "go-cover",
    }
    out = capsys.readouterr().out
    assert "Set the project's settings to go's conventions:" in out
    assert "  coverage_report_format = go-cover" in out
    assert "  note: go test runs the test file's whole package" in out


def test_a_dry_run_with_conventions_says_them_and_changes_nothing(monkeypatch, tmp_path, capsys):
    _go_module(tmp_path)
    sent = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request.method)
        return httpx.Response(200, json=IMPORTED)

    _answering(monkeypatch, handler)
    argv = ["import", "--repo", str(tmp_path), "--project", "p", "--token", "t"]

    assert cli.main([*argv, "--conventions", "--dry-run"]) == 0

    assert sent == ["POST"]  # the import's own dry run, no PATCH
    assert "Would set the project's settings to go's conventions:" in capsys.readouterr().out


def test_conventions_the_server_refuses_stop_the_import_naming_why(monkeypatch, tmp_path, capsys):
    _go_module(tmp_path)
    sent = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request.method)
        return httpx.Response(
            400, json={"test_path_template": ["Test file a_test.go is already the\ntest file"]}
        )

    _answering(monkeypatch, handler)
    argv = ["import", "--repo", str(tmp_path), "--project", "p", "--token", "t", "--conventions"]

    assert cli.main(argv) == 1

    assert sent == ["PATCH"]
    err = capsys.readouterr().err
    assert "The project's settings were refused for go's conventions:" in err
    # The server's newline is shown escaped: no value prints a line of its own.
    assert "  test_path_template: Test file a_test.go is already the\\u000atest file" in err


def test_import_with_an_override_sends_the_teams_priority(monkeypatch, tmp_path, capsys):
    _go_module(tmp_path)
    overrides = tmp_path / "overrides.json"
    overrides.write_text('{"components": [{"module_name": "store.cache", "priority": 900}]}')
    sent = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(json.loads(request.content))
        return httpx.Response(200, json=IMPORTED)

    _answering(monkeypatch, handler)
    argv = ["import", "--repo", str(tmp_path), "--project", "p", "--token", "t"]

    assert cli.main([*argv, "--override", str(overrides)]) == 0
    rows = {row["module_name"]: row for row in sent[0]["components"]}
    assert rows["store.cache"]["priority"] == 900

    overrides.write_text('{"components": [{"module_name": "store.cahce", "priority": 900}]}')
    assert cli.main([*argv, "--override", str(overrides)]) == 1
    assert "override 1 (store.cahce): no such module in the scan" in capsys.readouterr().err
    assert len(sent) == 1

    manifest = tmp_path / "m.json"
    manifest.write_text('{"components": []}')
    assert cli.main([*argv, "--manifest", str(manifest), "--override", str(overrides)]) == 2
    assert "--override changes a scan's rows" in capsys.readouterr().err


def test_run_of_a_context_whose_children_are_all_nested_contexts_starts_nothing(
    monkeypatch, tmp_path, capsys
):
    created = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            created.append(request.url.path)
        if request.url.params.get("parent_component") == "c1":
            inner = {"id": "c2", "module_name": "outer.inner", "type": "context"}
            return httpx.Response(200, json={"results": [inner], "next": None})
        outer = {"id": "c1", "module_name": "outer", "type": "context"}
        return httpx.Response(200, json={"results": [outer], "next": None})

    _answering(monkeypatch, handler)
    repo = git_repo(tmp_path / "repo")
    argv = ["run", "--project", "p", "--context", "outer", "--repo", str(repo), "--token", "t"]

    assert cli.main(argv) != 0

    assert "outer is not a context: it has no child components" in capsys.readouterr().err
    assert created == []


def test_import_without_a_grammar_installed_says_what_to_install(monkeypatch, tmp_path, capsys):
    from spawnctl import tree_scan

    monkeypatch.setitem(tree_scan._PACKAGES, "go", ("tree_sitter_nothing_here", "tree-sitter-go"))
    monkeypatch.setattr(tree_scan, "_parsers", {})
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "a.go").write_text("package a\n")
    argv = ["import", "--repo", str(tmp_path), "--project", "p", "--token", "t"]

    assert cli.main([*argv, "--language", "go"]) == 1

    assert "pip install tree-sitter tree-sitter-go" in capsys.readouterr().err


def test_import_refuses_a_language_it_does_not_read(tmp_path, capsys):
    argv = ["import", "--repo", str(tmp_path), "--project", "p", "--token", "t"]

    with pytest.raises(SystemExit) as raised:
        cli.main([*argv, "--language", "cobol"])

    assert raised.value.code == 2
    assert "invalid choice: 'cobol'" in capsys.readouterr().err
