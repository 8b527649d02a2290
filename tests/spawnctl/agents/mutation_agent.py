#!/usr/bin/env python3
"""A scripted coding agent for the mutation gate's end-to-end test, on the sample module
``shop/pricing.py`` (``discounted(price, percent)``). Its first draft runs every line and
asserts almost nothing; asked to improve, it writes tests that check the values and the
limits, but only when the prompt hands it surviving mutants (so the test shows they were
handed). It never touches the code under test.
"""

import json
import os
import sys
from pathlib import Path

RUNS_EVERYTHING = """import pytest

from shop.pricing import discounted


def test_discounted_runs():
    assert discounted(100, 10) is not None
    with pytest.raises(ValueError):
        discounted(100, 101)
"""
CHECKS_EVERYTHING = """import pytest

from shop.pricing import discounted


def test_a_discount_takes_its_share_off():
    assert discounted(100, 10) == 90
    assert discounted(19.99, 15) == 16.99


def test_no_discount_and_a_full_one_are_allowed():
    assert discounted(80, 0) == 80
    assert discounted(80, 100) == 0


@pytest.mark.parametrize("percent", [-1, -0.5, 100.5, 101])
def test_a_percent_outside_0_to_100_is_refused(percent):
    with pytest.raises(ValueError, match="percent must be 0 to 100"):
        discounted(100, percent)
"""


def main() -> int:
    step = os.environ["SPAWNCTL_STEP"]
    prompt = sys.argv[sys.argv.index("-p") + 1] if "-p" in sys.argv else ""
    handed_survivors = "went unnoticed" in prompt and "- line " in prompt
    body = CHECKS_EVERYTHING if step == "ImproveTests" and handed_survivors else RUNS_EVERYTHING
    path = Path(os.environ["SPAWNCTL_TEST_FILE"])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(body)
    print(json.dumps({"type": "result", "subtype": "success", "result": f"wrote {path}"}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
