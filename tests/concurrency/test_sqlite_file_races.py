"""The race scenarios on a SQLite file, in a process of their own (see sqlite_file_races.py
for why the suite's in-memory database cannot host them)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.db import connection

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(
    connection.vendor != "sqlite",
    reason="the SQLite pass runs this; on PostgreSQL test_postgres_races.py runs the races",
)
def test_races_on_a_sqlite_file_apply_once(tmp_path):
    completed = subprocess.run(
        [sys.executable, "-m", "tests.concurrency.sqlite_file_races", tmp_path / "races.sqlite3"],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=600,
    )

    assert completed.returncode == 0, completed.stdout + completed.stderr
    for scenario in ("spawn_race", "spawn_doors_race", "workflow_race"):
        assert f"{scenario}: " in completed.stdout
