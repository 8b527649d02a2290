#!/usr/bin/env python3
"""A scripted coding agent for runs on real packages: writes a real pytest file that imports
the component's module and checks what it is, at the test file spawnctl names.

Called through a project's ``agent_command_template`` (``python3 importing_agent.py -p
{prompt}``) with SPAWNCTL_COMPONENT and SPAWNCTL_TEST_FILE set by spawnctl; it refuses to
write a file that exists already (two components handed one file would show up here).
"""

import json
import os
import re
import sys
from pathlib import Path

TEMPLATE = '''"""Tests for {module}, written by the scripted agent."""

import importlib
import inspect


def test_{function}_imports_as_itself():
    module = importlib.import_module({module!r})
    assert module.__name__ == {module!r}
    assert inspect.getsourcefile(module).endswith({tail!r})
'''


def main() -> int:
    module = os.environ.get("SPAWNCTL_COMPONENT")
    test_file = os.environ.get("SPAWNCTL_TEST_FILE")
    step = os.environ.get("SPAWNCTL_STEP")
    if not module or not test_file:
        print("scripted agent: no component or test file", file=sys.stderr)
        return 3
    path = Path(test_file)
    if step == "GenerateTestsAndFixtures" and path.exists():
        print(f"scripted agent: {test_file} already exists", file=sys.stderr)
        return 4
    path.parent.mkdir(parents=True, exist_ok=True)
    tail = module.replace(".", "/") + ".py"
    function = re.sub(r"\W+", "_", module).strip("_").lower()
    path.write_text(TEMPLATE.format(module=module, function=function, tail=tail))
    print(json.dumps({"type": "result", "subtype": "success", "result": f"wrote {test_file}"}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
