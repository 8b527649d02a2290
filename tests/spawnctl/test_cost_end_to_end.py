"""What a run cost, end to end: spawnctl against a live server with a stand-in agent that
prints Claude Code's JSON result (cost, tokens, session_id). The run's run_usage is the sum of
what the agent printed, a fix continues the printed conversation with --resume, a hung agent
is stopped at the project's time limit, and a run that spends its budget stops with the
budget's text until the budget is raised."""

from __future__ import annotations

import json
from pathlib import Path

from tests.spawnctl.conftest import Workspace, agent_calls

COST = "0.125"


def settings(workspace: Workspace, **values: object) -> None:
    response = workspace.server.http.patch(f"projects/{workspace.server.project}/", json=values)
    assert response.status_code == 200, response.text


def calls(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def run_args(session_id: str, workspace: Workspace, *more: str) -> list[str]:
    return [
        "run",
        session_id,
        "--repo",
        str(workspace.work),
        "--jobs",
        "3",
        "--lease-seconds",
        "20",
        "--retry-pause",
        "0",
        *more,
    ]


def test_the_runs_cost_is_what_the_agent_printed_a_fix_resumes_and_a_hung_agent_is_stopped(
    workspace,
):
    server = workspace.server
    settings(workspace, agent_timeout_seconds=2, max_step_attempts=2, min_line_coverage=None)
    session = server.context("Cart", [("Basket", 3), ("Coupon", 2), ("Stuck", 1)])
    argv_log = workspace.root / "argv.log"

    done = workspace.run(
        *run_args(session["id"], workspace),
        STAND_IN_COST=COST,
        STAND_IN_ARGV=str(argv_log),
        STAND_IN_BROKEN="Shop.Cart.Coupon",
        STAND_IN_HANG="Shop.Cart.Stuck",
    )

    assert done.returncode == 1, done.stdout
    children = {c["component"]["name"]: c for c in server.children(session["id"])["results"]}
    # The hung agent was stopped at its limit, twice, and its child failed with the reason.
    stuck = children["Stuck"]
    assert stuck["status"] == "failed"
    assert stuck["failure_reason"] == "GenerateTestsAndFixtures failed 2 times: Timed out after 2 s"
    # What every answered call printed, and nothing for the stopped ones.
    answered = [c for c in agent_calls(workspace) if c[2] != "Shop.Cart.Stuck"]
    assert len(answered) == 3  # Basket's and Coupon's drafts, Coupon's fix
    context = server.session(session["id"])
    assert context["run_usage"]["cost_usd"] == len(answered) * float(COST)
    assert context["run_usage"]["agent_steps"] == 3 + 2  # and Stuck's two timed-out steps
    assert context["run_usage"]["input_tokens"] == 300
    assert children["Coupon"]["usage"]["cost_usd"] == 2 * float(COST)
    assert server.children(session["id"])["summary"]["cost_usd"] == 3 * float(COST)
    # Coupon's fix continued the conversation its first draft printed.
    coupon = children["Coupon"]
    assert coupon["external_conversation_id"] == f"conv-{coupon['id']}"
    fix = next(c for c in calls(argv_log) if c["step"] == "FixCompilationErrors")
    assert fix["argv"][fix["argv"].index("--resume") + 1] == f"conv-{coupon['id']}"
    draft = next(
        c for c in calls(argv_log) if c["module"] == "Shop.Cart.Coupon" and c["step"] != fix["step"]
    )
    assert "--resume" not in draft["argv"]
    # Where the cost shows: the closing table, and the run's total.
    assert "Coupon: complete, attempt 1, $0.25" in done.stdout
    assert "Run cost: $0.38" in done.stdout
    status = workspace.run("status", session["id"])
    assert "$0.38" in status.stdout


def test_a_run_that_spends_its_budget_stops_saying_so_and_goes_on_once_it_is_raised(workspace):
    server = workspace.server
    settings(workspace, min_line_coverage=None, default_max_cost_usd=0.3)
    session = server.context("Till", [("Drawer", 4), ("Receipt", 3), ("Refund", 2), ("Shift", 1)])
    assert server.session(session["id"])["max_cost_usd"] == 0.3

    stopped = workspace.run(*run_args(session["id"], workspace, "--jobs", "1"), STAND_IN_COST="0.2")

    assert stopped.returncode == 1, stopped.stdout
    assert "Run budget spent: $0.40 of $0.30" in stopped.stdout
    summary = server.children(session["id"])["summary"]
    assert summary["complete"] == 2 and summary["active"] == 2
    assert server.session(session["id"])["run_usage"]["cost_usd"] == 0.4
    # Another machine's worker finds nothing it may run, and says why.
    helper = workspace.run("work", session["id"], "--repo", str(workspace.clone("second")))
    assert helper.returncode == 1, helper.stdout
    assert (
        f"Session {session['id']} cannot go on: Run budget spent: $0.40 of $0.30" in helper.stdout
    )

    raised = server.http.patch(f"sessions/{session['id']}/", json={"max_cost_usd": 5})
    assert raised.status_code == 200, raised.text
    again = workspace.run(*run_args(session["id"], workspace), STAND_IN_COST="0.2")

    assert again.returncode == 0, again.stdout
    assert server.session(session["id"])["status"] == "complete"
    assert "Run cost: $0.80 of a $5.00 budget" in again.stdout
