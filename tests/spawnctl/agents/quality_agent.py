#!/usr/bin/env python3
"""A scripted coding agent whose first drafts are known: it writes real pytest files for the
modules of the sample package the quality-bar test makes (each module has the functions
``low``, ``high`` and ``label`` with a branch in ``label``).

QUALITY_PLAN (JSON: module name → kind) says what each first draft is:
  good        every function called and checked: meets the bar at once
  weak        one function only (too little coverage); ImproveTests writes the good tests
  no_asserts  every function called, nothing checked; ImproveTests adds the checks
  hopeless    one function only, whatever it is asked: never meets the bar
"""

import json
import os
import sys
from pathlib import Path

GOOD = """from {module} import high, label, low


def test_low():
    assert low(3) == 2


def test_high():
    assert high(3) == 4


def test_label_of_small_and_big_numbers():
    assert label(1) == "small"
    assert label(100) == "big"
"""
WEAK = """from {module} import low


def test_low():
    assert low(3) == 2
"""
NO_ASSERTS = """from {module} import high, label, low


def test_everything_runs():
    low(3)
    high(3)
    label(1)
    label(100)
"""


def main() -> int:
    module = os.environ["SPAWNCTL_COMPONENT"]
    step = os.environ["SPAWNCTL_STEP"]
    kind = json.loads(os.environ.get("QUALITY_PLAN") or "{}").get(module, "good")
    if kind == "hopeless":
        body = WEAK
    elif step == "GenerateTestsAndFixtures":
        body = {"good": GOOD, "weak": WEAK, "no_asserts": NO_ASSERTS}[kind]
    else:
        body = GOOD
    path = Path(os.environ["SPAWNCTL_TEST_FILE"])
    if not path.name.startswith("test_"):
        print(f"quality agent: {path} is not a test file", file=sys.stderr)
        return 3
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(body.format(module=module))
    print(json.dumps({"type": "result", "subtype": "success", "result": f"wrote {path}"}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
