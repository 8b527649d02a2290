"""The README's and docs/api.md's walk-throughs, run as written against a real server.

Each ```sh block of a walk-through runs, in order, in one bash process (so variables and
functions carry over, as they do for a reader typing them into one terminal); the output of
each block is compared with the ```text block that follows it, after ids, tokens and times
(which differ from run to run) are replaced by placeholders. The server is
``manage.py runserver`` on a free port with a SQLite file of its own, migrated and loaded with
the demo data, as ``scripts/serve`` does.

Needs bash, curl and jq; without them the tests are skipped, unless REQUIRE_WALKTHROUGH is
set (as CI does): then they fail.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTED_URL = "http://127.0.0.1:8000"
BLOCK = re.compile(r"```(sh|text)\n(.*?)```", re.S)
MARK = "@@walkthrough-block@@"
# What differs from one run to the next: UUIDs, API tokens, short ids (branch names), times.
VOLATILE = [
    (re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"), "<uuid>"),
    (re.compile(r"\b[0-9a-f]{40}\b"), "<token>"),
    (re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)?"), "<time>"),
    (re.compile(r"(?<=-)[0-9a-f]{8}\b"), "<short-id>"),
]

pytestmark = [
    pytest.mark.walkthrough,
    # The server here always has a SQLite file of its own, as scripts/serve does; the suite's
    # PostgreSQL pass would only run the same thing again.
    pytest.mark.skipif(
        os.environ.get("DATABASE_URL", "").startswith("postgres"),
        reason="the walk-throughs run once, on the SQLite pass",
    ),
]


def _normalised(text: str) -> str:
    for pattern, placeholder in VOLATILE:
        text = pattern.sub(placeholder, text)
    return "\n".join(line.rstrip() for line in text.strip().splitlines())


def _matches(output: str, expected: str) -> bool:
    """A line of the documented output that starts with ``...`` stands for any lines (the
    docs elide repetition that way); every other line must match exactly."""
    parts = []
    for line in _normalised(expected).splitlines():
        parts.append(r"(?:[^\n]*\n)*?" if line.startswith("...") else re.escape(line) + r"\n")
    return re.fullmatch("".join(parts), _normalised(output) + "\n") is not None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _require(*tools: str) -> None:
    missing = [tool for tool in tools if shutil.which(tool) is None]
    if not missing:
        return
    reason = f"{', '.join(missing)} missing (apt-get install {' '.join(missing)})"
    if os.environ.get("REQUIRE_WALKTHROUGH"):
        pytest.fail(f"REQUIRE_WALKTHROUGH is set but {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[tuple[str, dict[str, str]]]:
    _require("bash", "curl", "jq")
    database = tmp_path_factory.mktemp("walkthrough") / "db.sqlite3"
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{database}", "DEBUG": "true"}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    manage = [sys.executable, str(ROOT / "manage.py")]
    for command in (["migrate", "--noinput"], ["seed_demo"]):
        subprocess.run([*manage, *command], env=env, cwd=ROOT, check=True, capture_output=True)
    port = _free_port()
    process = subprocess.Popen(
        [*manage, "runserver", f"127.0.0.1:{port}", "--noreload"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError("the server did not start") from None
                time.sleep(0.2)
        yield f"http://127.0.0.1:{port}", env
    finally:
        process.terminate()
        process.wait(timeout=10)


def _walkthrough(text: str) -> list[tuple[str, str | None]]:
    """(sh block, the text block right after it or None), skipping the block that starts the
    server: the fixture has started it."""
    pairs: list[tuple[str, str | None]] = []
    for kind, body in BLOCK.findall(text):
        if kind == "sh":
            if body.strip().startswith("scripts/serve"):
                continue
            pairs.append((body, None))
        elif pairs and pairs[-1][1] is None:
            pairs[-1] = (pairs[-1][0], body)
    return pairs


def _run(pairs: list[tuple[str, str | None]], url: str, env: dict[str, str]) -> list[str]:
    script = "\n".join(f"{block.replace(DOCUMENTED_URL, url)}\necho '{MARK}'" for block, _ in pairs)
    python_dir = str(Path(sys.executable).parent)
    completed = subprocess.run(
        ["bash", "-c", script],
        env={**env, "PATH": f"{python_dir}:{env['PATH']}"},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    outputs = completed.stdout.split(MARK + "\n")
    assert len(outputs) == len(pairs) + 1, completed.stderr
    return outputs[:-1]


def _check(document: str, server: tuple[str, dict[str, str]], start: str | None = None) -> None:
    text = (ROOT / document).read_text()
    if start is not None:
        text = text[text.index(start) :]
        text = text[: text.find("\n## ")] if "\n## " in text else text
    pairs = _walkthrough(text)
    assert pairs, f"no walk-through found in {document}"
    outputs = _run(pairs, *server)
    for (block, expected), output in zip(pairs, outputs, strict=True):
        if expected is None:
            continue
        assert _matches(output, expected), (
            f"{document}, block:\n{block}\nprinted:\n{output}\ndocumented:\n{expected}"
        )


def test_readme_walkthrough_prints_what_the_readme_shows(server):
    _check("README.md", server, start="A walk-through")


def test_api_doc_walkthrough_prints_what_the_doc_shows(server):
    _check("docs/api.md", server)
