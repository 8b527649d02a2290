"""Several app servers on one PostgreSQL and one Redis, behind a reverse proxy.

Runs ``bench/load.py``'s runners mode with ``--servers 2`` as a subprocess, at a small size:
two gunicorn instances on a database of the test's own and on a redis-server the bench starts,
an HAProxy in front, four runners sharing two contexts of six children, and one instance
SIGKILLed two seconds in, while the proxy has requests in flight to it. Then the bench's
throttle phase: a user throttled at 10 a minute sends 15 requests over both instances.

It asserts the bench's exit status and its printed and JSON checks, what the database holds
afterwards (every POST carried an Idempotency-Key, every retry used its request's key) and that
no process of the run is left. It needs PostgreSQL (skipped on SQLite), redis-server and
haproxy: without those it is skipped, unless REQUIRE_CLUSTER is set, as CI does; then it fails.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from django.db import connection

REPO = Path(__file__).resolve().parents[2]
# The whole bench: migrate, two instances and the proxy, the runners, the checks, the throttle
# phase's own two instances. About 30 s on 2 cores.
BENCH_TIMEOUT_S = 80
THROTTLE_RATE = 10
THROTTLE_EXTRA = 5  # bench/load_runners.py THROTTLE_EXTRA
PROGRAMS = {"redis-server": "/usr/bin/redis-server", "haproxy": "/usr/sbin/haproxy"}

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(
        connection.vendor != "postgresql",
        reason="several app servers share one PostgreSQL (set DATABASE_URL, or "
        "TEST_POSTGRES_URL for scripts/test)",
    ),
]


def _require_programs() -> None:
    missing = [
        name for name, path in PROGRAMS.items() if not (shutil.which(name) or Path(path).exists())
    ]
    if not missing:
        return
    reason = f"{', '.join(missing)} missing (apt-get install {' '.join(missing)})"
    if os.environ.get("REQUIRE_CLUSTER"):
        pytest.fail(f"REQUIRE_CLUSTER is set but {reason}", pytrace=False)
    pytest.skip(reason)


def _connect(database: str):
    import psycopg

    settings = connection.settings_dict
    return psycopg.connect(
        dbname=database,
        user=settings["USER"],
        password=settings["PASSWORD"],
        host=settings["HOST"] or "127.0.0.1",
        port=settings["PORT"] or 5432,
        autocommit=True,
        connect_timeout=10,
    )


@pytest.fixture
def database_url() -> Iterator[str]:
    """A database of this test's own, created with the suite's credentials and dropped after
    (once the programs the bench starts are known to be there)."""
    _require_programs()
    settings = connection.settings_dict
    name = f"test_{settings['NAME']}"[:48] + f"_cluster_{secrets.token_hex(3)}"
    with _connect("postgres") as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield (
            f"postgres://{quote(settings['USER'], safe='')}:"
            f"{quote(settings['PASSWORD'] or '', safe='')}@{settings['HOST'] or '127.0.0.1'}:"
            f"{settings['PORT'] or 5432}/{name}"
        )
    finally:
        with _connect("postgres") as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _run_bench(arguments: list[str], scratch: Path) -> tuple[int, str]:
    """The bench's exit status and output; past its time, SIGTERM (it stops what it started),
    then SIGKILL (what it started dies with it, gunicorn's workers within 30 s)."""
    environment = {**os.environ, "TMPDIR": str(scratch)}
    environment.pop("DJANGO_SETTINGS_MODULE", None)
    process = subprocess.Popen(
        [sys.executable, "bench/load.py", *arguments],
        cwd=REPO,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        output, _ = process.communicate(timeout=BENCH_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            output, _ = process.communicate(timeout=45)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            output, _ = process.communicate(timeout=10)
        pytest.fail(f"the bench ran past {BENCH_TIMEOUT_S} s:\n{output}")
    return process.returncode, output


def _processes_mentioning(text: str) -> list[str]:
    """Command lines of running processes that name ``text`` (the run's scratch directory)."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            words = cmdline.read_bytes().split(b"\0")
        except OSError:
            continue  # it ended meanwhile
        line = " ".join(word.decode(errors="replace") for word in words)
        if text in line:
            found.append(f"{cmdline.parent.name}: {line}")
    return found


@pytest.fixture
def scratch() -> Iterator[Path]:
    # Short: HAProxy's stats socket lives in it, and a socket's path is at most 107 bytes.
    path = Path(tempfile.mkdtemp(prefix="spawnctl-cluster-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def test_two_servers_one_killed_behind_haproxy(database_url: str, scratch: Path) -> None:
    figures_path = scratch / "figures.json"
    status, output = _run_bench(
        [
            "--database-url",
            database_url,
            "--runners",
            "4",
            "--contexts",
            "2",
            "--components",
            "6",
            "--workers",
            "2",
            "--lease-seconds",
            "3",
            "--seed",
            "7",
            "--servers",
            "2",
            "--kill-one-after",
            "2",
            "--throttle-rate",
            str(THROTTLE_RATE),
            "--max-seconds",
            "60",
            "--json",
            str(figures_path),
        ],
        scratch,
    )
    assert status == 0, output
    assert output.rstrip().endswith("PASS"), output
    figures = json.loads(figures_path.read_text())

    # The run: two instances behind the proxy, every context and child complete, nothing
    # failed but the killed instance's requests, each of which was sent again and answered.
    assert (figures["database"], figures["servers"], figures["proxy"]) == (
        "PostgreSQL",
        2,
        "haproxy",
    )
    assert figures["context_sessions_completed"] == 2
    assert figures["child_sessions_completed"] == 12
    assert figures["runners_figures"]["lease_overlaps"] == 0
    assert figures["runners_figures"]["holdings_by_ending"].get("complete") == 12
    for count in (
        "server_errors",
        "transport_errors",
        "broken_expectations",
        "failed_checks",
        "server_log_tracebacks",
    ):
        assert figures[count] == 0, (count, output)
    assert "server errors (5xx): 0, transport errors: 0" in output

    # The kill: one instance SIGKILLed with requests in flight, which the proxy could not
    # answer; every one sent again (same Idempotency-Key) and answered by the other instance.
    kill = figures["kill"]
    victim = kill["killed"]
    survivor = ({"app1", "app2"} - {victim}).pop()
    assert victim in ("app1", "app2")
    assert kill["proxy_marked_it_down_after_s"] is not None
    assert kill["in_flight_cut"] >= 1, kill
    assert figures["killed_instance_in_flight"] == kill["in_flight_cut"]
    assert set(kill["their_answers"]) <= {"no answer", "502", "503", "504"}
    assert kill["sent_again"] >= kill["in_flight_cut"]
    assert kill["sent_again_then_answered"] == kill["sent_again"]
    assert set(kill["answers_by_instance_5s_before"]) == {"app1", "app2"}
    assert set(kill["answers_by_instance_5s_after"]) == {survivor}
    counters = figures["proxy_counters"]
    assert counters[victim]["status"].startswith("DOWN")
    assert counters[survivor]["response_errors"] == counters[survivor]["aborted_by_server"] == 0
    assert f"killed: {victim}" in output
    assert f"the kill, each sent again): {kill['in_flight_cut']}" in output

    # Throttles counted once across the instances: exactly the rate succeeded, spread over
    # both, the rest 429, and the count is in Redis.
    throttle = figures["throttle"]
    assert throttle["statuses"] == {"200": THROTTLE_RATE, "429": THROTTLE_EXTRA}
    assert throttle["by_instance"]["app1"].get("200", 0) > 0
    assert throttle["by_instance"]["app2"].get("200", 0) > 0
    assert throttle["redis_throttle_keys"] >= 1
    assert f"statuses: {{'200': {THROTTLE_RATE}, '429': {THROTTLE_EXTRA}}}" in output

    # Every POST that succeeded left its answer under its key (so every POST carried one), and
    # no key was left unanswered (a retry under a new key would leave the cut try's behind).
    posts_answered_2xx = sum(
        count
        for endpoint, row in figures["endpoints"].items()
        if endpoint.startswith("POST ")
        for status, count in row["statuses"].items()
        if 200 <= int(status) < 300
    )
    with _connect(database_url.rsplit("/", 1)[1]) as bench_database:
        answered, unanswered = bench_database.execute(
            "SELECT count(*) FILTER (WHERE completed_at IS NOT NULL), "
            "count(*) FILTER (WHERE completed_at IS NULL) FROM core_idempotencykey"
        ).fetchone()
    assert (answered, unanswered) == (posts_answered_2xx, 0)

    # Nothing the run started is left: no redis-server, haproxy or gunicorn of its scratch.
    run_scratch = Path(figures["cluster"]["proxy"].split("(")[1].rstrip(")")).parent
    deadline = time.monotonic() + 10
    while (left := _processes_mentioning(str(run_scratch))) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert left == []
