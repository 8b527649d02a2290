"""The mutation gate on a live server, in a real git repository with an origin, with
coverage.py and cosmic-ray really measuring: a first draft that runs every line of a small
module but asserts too little meets the coverage bar and not the mutation score; ImproveTests
is handed the surviving mutants, the agent's second draft kills them, the child completes, and
the code under test is byte for byte what it was, on the branch and in the working copy."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from tests.spawnctl.conftest import REPO, git

AGENT = Path(__file__).resolve().parent / "agents" / "mutation_agent.py"
SAMPLE = Path(__file__).resolve().parent / "fixtures" / "mutation"

pytestmark = [
    pytest.mark.skipif(shutil.which("git") is None, reason="needs git"),
    pytest.mark.skipif(
        os.environ.get("DATABASE_URL", "").startswith("postgres"),
        reason="one run of this scenario is enough: it runs on the SQLite pass",
    ),
]


def test_survivors_are_handed_to_improve_tests_and_the_improved_tests_kill_them(workspace):
    pytest.importorskip("coverage", reason="the bar's default command runs coverage.py")
    pytest.importorskip("cosmic_ray", reason="the mutation gate drives cosmic-ray")
    server, work, env = workspace.server, workspace.work, workspace.env
    (work / "shop").mkdir()
    (work / "shop" / "__init__.py").write_text('"""The shop."""\n')
    shutil.copy(SAMPLE / "pricing.py", work / "shop" / "pricing.py")
    original = (work / "shop" / "pricing.py").read_bytes()
    git("add", "shop", cwd=work, env=env)
    git("commit", "-q", "-m", "the shop", cwd=work, env=env)
    git("push", "-q", "origin", "main", cwd=work, env=env)
    settings = server.http.patch(
        f"projects/{server.project}/",
        json={
            "agent_command_template": f"python3 {AGENT} -p {{prompt}}",
            "test_command_template": "python -m pytest -q {test_file}",
            "min_line_coverage": 100,
            "test_runs": 1,
            "max_improve_attempts": 2,
            "min_mutation_score": 80,
            "max_mutants": 10,
            "mutant_timeout_seconds": 30,
        },
    )
    assert settings.status_code == 200, settings.text
    assert workspace.run("import", "--repo", str(work), "--project", server.project).returncode == 0

    done = workspace.run(
        "run", "--project", server.project, "--context", "shop", "--repo", str(work),
        "--lease-seconds", "30",
        timeout=600,
        PYTHONPATH=os.pathsep.join([".", str(REPO)]),
    )  # fmt: skip

    assert done.returncode == 0, done.stdout
    started = next(line for line in done.stdout.splitlines() if line.startswith("Started session"))
    context_id = started.split()[2]
    [child] = [
        c for c in server.children(context_id)["results"]
        if c["component"]["module_name"] == "shop.pricing"
    ]  # fmt: skip
    assert child["status"] == "complete"
    assert server.steps(child["id"]).count("ImproveTests") == 1
    interactions = sorted(
        server.get(f"sessions/{child['id']}/interactions/")["results"],
        key=lambda interaction: interaction["created_at"],
    )
    first, second = [
        i["result"]["data"]["verification"] for i in interactions if i["step_name"] == "VerifyTests"
    ]
    # The first draft runs every line and catches few of the sampled mutants.
    assert first["coverage"]["lines_covered"] == first["coverage"]["lines_total"]
    assert first["mutation"]["sampled"] == 10
    # The step's time counts the mutants' runs, not only the coverage run.
    first_step = next(i for i in interactions if i["step_name"] == "VerifyTests")
    assert first_step["result"]["duration_ms"] >= 1000
    assert first["mutation"]["survived"] >= 3
    assert len(first["mutation"]["survivors"]) == first["mutation"]["survived"]
    prompt = next(
        i["command"]["metadata"]["prompt"] for i in interactions if i["step_name"] == "ImproveTests"
    )
    assert "Mutation score of shop/pricing.py is " in prompt and "%, below 80%" in prompt
    assert "These changes to shop/pricing.py went unnoticed" in prompt
    for survivor in first["mutation"]["survivors"]:
        assert f"- line {survivor['line']}: {survivor['change']}" in prompt
    # The improved tests judge the same sample and catch every mutant of it.
    assert second["mutation"]["sampled"] == 10
    assert second["mutation"]["survived"] == 0
    verification = child["verification"]
    assert (verification["passed"], verification["mutation_score"]) == (True, 100.0)
    assert verification["mutation"]["survivors"] == []
    summary = server.children(context_id)["summary"]["mutation"]
    assert summary["survived"] == 0 and summary["mutation_score"] == 100.0
    # The code under test is unchanged, on the branch and in the working copy; the runner's
    # files were not committed.
    branch = server.session(context_id)["branch"]
    assert git("show", f"{branch}:shop/pricing.py", cwd=workspace.origin).encode() == original
    assert (work / "shop" / "pricing.py").read_bytes() == original
    assert not [f for f in workspace.origin_files(branch) if f.startswith(".spawnctl")]
    report = json.loads(json.dumps(server.get(f"sessions/{context_id}/report/")))
    assert report["mutation"]["mutation_score"] == 100.0
