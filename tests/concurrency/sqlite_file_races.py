"""Runs the race scenarios against a SQLite file, the product's embedded default.

    python -m tests.concurrency.sqlite_file_races PATH [ROUNDS [SCENARIO ...]]

The test suite's SQLite database lives in memory with a shared cache, where a second writer
is refused at once ("database table is locked") instead of waiting its turn, so threads
cannot race there. A file behaves as in real use: the IMMEDIATE transaction mode in
``config/settings.py`` makes each writer wait for the write lock. This runner migrates a fresh
file, runs each named scenario (of ``races.py`` and ``lease_races.py``; by default those of
``races.py``) ``ROUNDS`` times and exits non-zero on the first failed assertion.
"""

from __future__ import annotations

import os
import sys
import time


def main(argv: list[str]) -> int:
    path = argv[1]
    rounds = int(argv[2]) if len(argv) > 2 else 3
    os.environ["DATABASE_URL"] = f"sqlite:///{path}"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

    import django

    django.setup()

    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection
    from django.db.backends.signals import connection_created

    # What is measured is who waits for whose lock, not durability: commits skip the fsync,
    # which on a busy disk would make the scenarios' set-up most of the run.
    def skip_fsync(sender: object, connection: object, **kwargs: object) -> None:
        connection.cursor().execute("PRAGMA synchronous = OFF")

    connection_created.connect(skip_fsync)

    # The scenarios create a user each; the default hasher would spend most of the run.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    call_command("migrate", verbosity=0, interactive=False)
    assert connection.vendor == "sqlite"
    assert connection.settings_dict["OPTIONS"]["transaction_mode"] == "IMMEDIATE"

    from tests.concurrency import lease_races, races

    known = {scenario.__name__: scenario for scenario in races.SCENARIOS + lease_races.SCENARIOS}
    names = argv[3:] or [scenario.__name__ for scenario in races.SCENARIOS]
    unknown = [name for name in names if name not in known]
    if unknown:
        print(f"unknown scenarios: {', '.join(unknown)}", file=sys.stderr)
        return 2
    for scenario in (known[name] for name in names):
        started = time.monotonic()
        for _ in range(rounds):
            scenario()
        elapsed = time.monotonic() - started
        name = scenario.__name__
        print(f"{name}: {rounds} rounds ok ({elapsed:.1f}s)")
    connection.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
