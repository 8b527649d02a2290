#!/usr/bin/env python3
"""A stand-in agent that meddles, as real agents do: its first draft writes the test file,
rewrites the shared conftest.py and edits the code under test; asked to improve its tests, it
puts both back as they were (`git checkout`). After writing it thinks a while and then looks
again at what its working copy holds, logging one JSON line to $MEDDLER_LOG: an agent that
shares its working copy with others finds their edits there.

The component's code is at the module name's path: Shop.Cart.Basket -> shop/cart/basket.py.
"""

import json
import os
import subprocess
import sys
import time
from pathlib import Path


def read(path):
    try:
        return Path(path).read_text()
    except OSError:
        return None


def main(argv):
    step = os.environ["SPAWNCTL_STEP"]
    module = os.environ["SPAWNCTL_COMPONENT"]
    test_file = Path(os.environ["SPAWNCTL_TEST_FILE"])
    source = Path(*module.lower().split(".")).with_suffix(".py")
    package, name = module.lower().rsplit(".", 1)
    if step == "GenerateTestsAndFixtures":
        test_file.parent.mkdir(parents=True, exist_ok=True)
        test_file.write_text(
            f"from {package} import {name}\n\n\n"
            f"def test_{name}_price():\n    assert {name}.price() == 1\n"
        )
        Path("conftest.py").write_text(f"MEDDLED_BY = {module!r}\n")
        source.write_text(source.read_text() + f"\nMEDDLED_BY = {module!r}\n")
    elif step == "ImproveTests":
        subprocess.run(["git", "checkout", "--", "conftest.py", str(source)], check=True)
    time.sleep(float(os.environ.get("MEDDLER_DELAY") or 0))
    seen = {
        "module": module,
        "step": step,
        "cwd": os.getcwd(),
        "conftest": read("conftest.py"),
        "sources": {str(path): path.read_text() for path in sorted(Path("shop").rglob("*.py"))},
    }
    with open(os.environ["MEDDLER_LOG"], "a") as log:
        log.write(json.dumps(seen) + "\n")
    print(json.dumps({"type": "result", "subtype": "success", "result": f"wrote {test_file}"}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
