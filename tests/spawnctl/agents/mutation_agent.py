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

SAMPLE = Path(__file__).resolve().parent.parent / "fixtures" / "mutation"


def main() -> int:
    step = os.environ["SPAWNCTL_STEP"]
    prompt = sys.argv[sys.argv.index("-p") + 1] if "-p" in sys.argv else ""
    handed_survivors = "went unnoticed" in prompt and "- line " in prompt
    draft = "strong" if step == "ImproveTests" and handed_survivors else "weak"
    body = (SAMPLE / f"{draft}_draft.py").read_text()
    path = Path(os.environ["SPAWNCTL_TEST_FILE"])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(body)
    print(json.dumps({"type": "result", "subtype": "success", "result": f"wrote {path}"}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
