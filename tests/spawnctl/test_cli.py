"""The command line's own rules: what it needs, its exit codes, and what it does not import."""

from __future__ import annotations

import importlib.metadata
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from spawnctl import cli

REPO = Path(__file__).resolve().parents[2]
SID = "11111111-1111-1111-1111-111111111111"


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
    assert (args.token, args.url) == ("from-env", "http://elsewhere:9")
    args = cli.build_parser().parse_args(["status", SID, "--url", "http://h:1", "--token", "x"])
    assert (args.token, args.url) == ("x", "http://h:1")


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
            str(tmp_path),
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
