"""The quality bar on a live server, in a real git repository with an origin, with coverage.py
really measuring and a scripted agent whose first drafts are known to be weak, assertion-free,
good, or never good enough: the weak and assertion-free children go through ImproveTests and
end complete with their measured coverage at or above the bar, the hopeless one ends failed
with the contract's text, the good one passes first time."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from tests.spawnctl.conftest import REPO, git

AGENT = Path(__file__).resolve().parent / "agents" / "quality_agent.py"
MODULE = '''"""{name}."""


def low(n):
    return n - 1


def high(n):
    return n + 1


def label(n):
    if n < 10:
        return "small"
    return "big"
'''
PLAN = {
    "shop.good": "good",
    "shop.weak": "weak",
    "shop.silent": "no_asserts",
    "shop.hopeless": "hopeless",
}

pytestmark = [
    pytest.mark.skipif(shutil.which("git") is None, reason="needs git"),
    pytest.mark.skipif(
        os.environ.get("DATABASE_URL", "").startswith("postgres"),
        reason="one run of this scenario is enough: it runs on the SQLite pass",
    ),
]


def test_children_below_the_bar_are_improved_and_one_that_never_gets_there_fails(workspace):
    pytest.importorskip("coverage", reason="the bar's default command runs coverage.py")
    server, work, env = workspace.server, workspace.work, workspace.env
    package = work / "shop"
    package.mkdir()
    (package / "__init__.py").write_text('"""The shop."""\n')
    for module in PLAN:
        name = module.split(".")[1]
        (package / f"{name}.py").write_text(MODULE.format(name=name))
    git("add", "shop", cwd=work, env=env)
    git("commit", "-q", "-m", "the shop", cwd=work, env=env)
    git("push", "-q", "origin", "main", cwd=work, env=env)
    settings = server.http.patch(
        f"projects/{server.project}/",
        json={
            "agent_command_template": f"python3 {AGENT} -p {{prompt}}",
            "test_command_template": "python -m pytest -q {test_file}",
            "min_line_coverage": 90,
            "min_branch_coverage": 100,
            "test_runs": 2,
            "max_improve_attempts": 2,
        },
    )
    assert settings.status_code == 200, settings.text
    assert workspace.run("import", "--repo", str(work), "--project", server.project).returncode == 0

    done = workspace.run(
        "run", "--project", server.project, "--context", "shop", "--repo", str(work),
        "--jobs", "2", "--lease-seconds", "30",
        timeout=600,
        QUALITY_PLAN=json.dumps(PLAN),
        PYTHONPATH=os.pathsep.join([".", str(REPO)]),
    )  # fmt: skip

    assert done.returncode == 1, done.stdout
    started = next(line for line in done.stdout.splitlines() if line.startswith("Started session"))
    context_id = started.split()[2]
    children = {c["component"]["module_name"]: c for c in server.children(context_id)["results"]}
    steps = {module: server.steps(child["id"]) for module, child in children.items()}
    assert {m: c["status"] for m, c in children.items()} == {
        "shop.good": "complete",
        "shop.weak": "complete",
        "shop.silent": "complete",
        "shop.hopeless": "failed",
    }
    assert "ImproveTests" not in steps["shop.good"]
    for module in ("shop.weak", "shop.silent"):
        assert steps[module].count("ImproveTests") == 1, steps[module]
        verification = children[module]["verification"]
        assert verification["passed"] is True
        assert verification["line_coverage"] >= 90
        assert verification["branch_coverage"] == 100.0
        assert verification["runs"] == [0, 0]
    assert steps["shop.hopeless"].count("ImproveTests") == 2
    hopeless = children["shop.hopeless"]
    assert hopeless["state"]["error"] == (
        "Tests do not meet the project's bar after 2 improvement attempts: "
        "Line coverage of shop/hopeless.py is 50.0%, below 90%; "
        "Branch coverage of shop/hopeless.py is 0.0%, below 100%"
    )
    # What the first drafts measured: the weak one ran too little, the silent one checked
    # nothing (and the agent was told so).
    weak_prompt = next(
        i["command"]["metadata"]["prompt"]
        for i in server.get(f"sessions/{children['shop.weak']['id']}/interactions/")["results"]
        if i["step_name"] == "ImproveTests"
    )
    assert "Line coverage of shop/weak.py is 50.0%, below 90%" in weak_prompt
    assert "Lines of shop/weak.py no test runs: " in weak_prompt
    silent_prompt = next(
        i["command"]["metadata"]["prompt"]
        for i in server.get(f"sessions/{children['shop.silent']['id']}/interactions/")["results"]
        if i["step_name"] == "ImproveTests"
    )
    assert "Tests without assertions: test_everything_runs" in silent_prompt
    summary = server.children(context_id)["summary"]["coverage"]
    assert summary["lines_total"] > 0
