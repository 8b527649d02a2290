"""The race scenarios on a SQLite file, in a process of their own (see sqlite_file_races.py
for why the suite's in-memory database cannot host them)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.db import connection

from tests.concurrency import lease_races, races

REPO = Path(__file__).resolve().parents[2]

# (rounds, scenarios) per run; one process each, so that each test stays short.
RUNS = {
    "spawn_and_workflow": (3, races.SCENARIOS),
    "claims": (
        1,
        [lease_races.claims_race_plain, lease_races.claims_race_with_stalled_and_busy_children],
    ),
    "capped_claims": (
        1,
        [
            lease_races.capped_claims_race_plain,
            lease_races.capped_claims_race_with_stalled_and_busy_children,
        ],
    ),
    "spawn_missing": (5, [lease_races.spawn_missing_race]),
    "spawn_against_cancel": (
        20,
        [lease_races.spawn_cancel_race, lease_races.spawn_missing_cancel_race],
    ),
    "retry_against_cancel": (20, [lease_races.retry_cancel_race]),
    "budget": (2, [lease_races.budget_race]),
    "child_order": (3, [lease_races.child_order_race]),
}

pytestmark = pytest.mark.skipif(
    connection.vendor != "sqlite",
    reason="the SQLite pass runs this; on PostgreSQL test_postgres_races.py and "
    "test_postgres_lease_races.py run the races",
)


@pytest.mark.parametrize("run", RUNS)
def test_races_on_a_sqlite_file_apply_once(tmp_path, run):
    rounds, scenarios = RUNS[run]
    names = [scenario.__name__ for scenario in scenarios]
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.concurrency.sqlite_file_races",
            tmp_path / "races.sqlite3",
            str(rounds),
            *names,
        ],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=600,
    )

    assert completed.returncode == 0, completed.stdout + completed.stderr
    for name in names:
        assert f"{name}: {rounds} rounds ok" in completed.stdout
