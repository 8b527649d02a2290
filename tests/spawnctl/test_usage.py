"""What an agent step cost, the runner's part: read from Claude Code's JSON result or from the
file at $SPAWNCTL_USAGE_FILE, only well-formed fields sent; the step's time limit from the
server (never above --timeout), a hung agent stopped at it; a run whose budget is spent
releasing its child and saying so."""

from __future__ import annotations

import json
import shlex
import sys

import httpx
import pytest

from spawnctl import usage
from spawnctl.api import Interaction, budget_text
from spawnctl.jobs import BUDGET, STOPPED, SessionJob, step_timeout
from tests.spawnctl.test_jobs import FakeServer, component_session, config_for, sent_result

CLAUDE_RESULT = {
    "type": "result",
    "subtype": "success",
    "is_error": False,
    "duration_ms": 9000,
    "num_turns": 6,
    "result": "wrote tests/test_cart.py",
    "session_id": "5f0c9b3e-7a1d-4c2e-9b8a-0d1e2f3a4b5c",
    "total_cost_usd": 0.0421,
    "usage": {
        "input_tokens": 12,
        "cache_creation_input_tokens": 8000,
        "cache_read_input_tokens": 50000,
        "output_tokens": 3400,
        "server_tool_use": {"web_search_requests": 0},
    },
    "modelUsage": {"claude-sonnet-4-5": {"costUSD": 0.0421}},
}
EXPECTED = {
    "cost_usd": 0.0421,
    "input_tokens": 12,
    "output_tokens": 3400,
    "cache_read_tokens": 50000,
    "cache_creation_tokens": 8000,
    "turns": 6,
    "model": "claude-sonnet-4-5",
    "conversation_id": "5f0c9b3e-7a1d-4c2e-9b8a-0d1e2f3a4b5c",
}


def test_claude_codes_json_result_is_read_into_the_usage_fields():
    printed = "some progress\n" + json.dumps(CLAUDE_RESULT) + "\n"

    assert usage.from_claude_output(printed) == EXPECTED


def test_an_older_claude_result_with_cost_usd_is_read_too():
    older = {"type": "result", "cost_usd": 0.5, "num_turns": 2, "session_id": "abc"}

    assert usage.from_claude_output(json.dumps(older)) == {
        "cost_usd": 0.5,
        "turns": 2,
        "conversation_id": "abc",
    }


@pytest.mark.parametrize(
    "printed",
    ["", "plain text", '{"type": "assistant"}', "[1, 2]", "{not json}", '{"type": "result"'],
)
def test_output_without_a_result_gives_no_usage(printed):
    assert not usage.from_claude_output(printed)


def test_clean_keeps_well_formed_fields_and_names_the_others():
    kept, dropped = usage.clean(
        {
            "cost_usd": -1,
            "input_tokens": 5,
            "output_tokens": 1.5,
            "turns": True,
            "model": "m\nx",
            "conversation_id": "$(touch PWNED)",
            "cache_read_tokens": None,
            "unknown": 1,
        }
    )

    assert kept == {"input_tokens": 5}
    assert sorted(dropped) == [
        "conversation_id",
        "cost_usd",
        "model",
        "output_tokens",
        "turns",
        "unknown",
    ]


def test_the_usage_file_is_read_and_its_problems_said(tmp_path):
    path = tmp_path / "usage.json"
    assert usage.from_file(path) is None
    path.write_text('{"cost_usd": 1.5, "turns": 3}')
    assert usage.from_file(path) == {"cost_usd": 1.5, "turns": 3}
    path.write_text("[1]")
    assert usage.from_file(path) == "usage.json is not a JSON object"
    path.write_bytes(b"\xff\xfe")
    assert usage.from_file(path) == "usage.json is not JSON"
    path.write_text("{" + " " * 70_000 + "}")
    assert usage.from_file(path) == "usage.json is larger than 64000 bytes"


@pytest.mark.parametrize(
    ("metadata", "cap", "expected"),
    [
        ({"timeout_seconds": 1800}, None, 1800.0),
        ({"timeout_seconds": 1800}, 60.0, 60.0),
        ({"timeout_seconds": 30}, 60.0, 30.0),
        ({}, 60.0, 60.0),
        ({}, None, None),
        ({"timeout_seconds": 0}, None, None),
        ({"timeout_seconds": -5}, 9.0, 9.0),
        ({"timeout_seconds": "600"}, None, None),
        ({"timeout_seconds": True}, None, None),
        ({"timeout_seconds": float("nan")}, None, None),
        ({"timeout_seconds": 10**12}, None, 86_400.0),
    ],
)
def test_the_steps_time_limit_is_the_servers_never_above_timeout(metadata, cap, expected):
    assert step_timeout(metadata, cap) == expected


def agent_step(shell: str, **metadata) -> Interaction:
    return Interaction(
        {
            "id": "i1",
            "step_name": "GenerateTestsAndFixtures",
            "command": {"command": shell, "metadata": {"prompt": "write tests", **metadata}},
        }
    )


def python(code: str) -> str:
    return shlex.join([sys.executable, "-c", code])


def test_an_agent_step_reports_what_claude_printed(tmp_path):
    server = FakeServer()
    config, _ = config_for(server, tmp_path)
    printed = python(f"print({json.dumps(json.dumps(CLAUDE_RESULT))})")

    SessionJob(config, component_session(), is_child=True)._run_step(agent_step(printed))

    assert sent_result(server)["data"] == {"usage": EXPECTED}


def test_a_wrapper_writes_its_usage_file_which_wins_over_stdout(tmp_path):
    server = FakeServer()
    config, _ = config_for(server, tmp_path)
    wrapper = python(
        "import json, os; "
        "open(os.environ['SPAWNCTL_USAGE_FILE'], 'w').write("
        "json.dumps({'cost_usd': 0.9, 'model': 'codex', 'output_tokens': 42})); "
        f"print({json.dumps(json.dumps(CLAUDE_RESULT))})"
    )

    SessionJob(config, component_session(), is_child=True)._run_step(agent_step(wrapper))

    assert sent_result(server)["data"] == {
        "usage": {"cost_usd": 0.9, "model": "codex", "output_tokens": 42}
    }


def test_a_malformed_usage_is_left_out_and_said_and_the_result_still_sent(tmp_path):
    server = FakeServer()
    config, seen = config_for(server, tmp_path)
    wrapper = python(
        "import os; open(os.environ['SPAWNCTL_USAGE_FILE'], 'w').write("
        '\'{"cost_usd": -3, "turns": 2}\')'
    )

    SessionJob(config, component_session(), is_child=True)._run_step(agent_step(wrapper))

    assert sent_result(server)["data"] == {"usage": {"turns": 2}}
    assert any("usage fields left out: cost_usd" in str(event) for event in seen)


def test_a_step_that_is_not_an_agents_gets_no_usage_file(tmp_path):
    server = FakeServer()
    config, _ = config_for(server, tmp_path)
    step = Interaction(
        {
            "id": "i1",
            "step_name": "RunTests",
            "command": {
                "command": python(
                    "import os, json; print(json.dumps({'type': 'result', 'total_cost_usd': 9,"
                    " 'env': 'SPAWNCTL_USAGE_FILE' in os.environ}))"
                ),
                "metadata": {},
            },
        }
    )

    SessionJob(config, component_session(), is_child=True)._run_step(step)

    sent = sent_result(server)
    assert "data" not in sent or not sent["data"]
    assert '"env": false' in sent["stdout"]


def test_a_hung_agent_is_stopped_at_the_steps_time_limit(tmp_path):
    server = FakeServer()
    config, _ = config_for(server, tmp_path)
    hung = agent_step("sleep 30", timeout_seconds=1)

    SessionJob(config, component_session(), is_child=True)._run_step(hung)

    sent = sent_result(server)
    assert sent["status"] == "error"
    assert sent["error_message"] == "Timed out after 1 s"
    assert sent["duration_ms"] < 10_000


def test_a_run_whose_budget_is_spent_releases_its_child_and_says_why(tmp_path):
    text = budget_text(1.005, 1.0)
    server = FakeServer(next_command=[httpx.Response(409, json={"detail": text})])
    config, seen = config_for(server, tmp_path)
    job = SessionJob(config, component_session(), is_child=True)

    status = job.run()

    assert text == "Run budget spent: $1.01 of $1.00"
    assert status == BUDGET != STOPPED
    assert job.halt.message == text
    assert server.routes() == ["next-command", "release"]
    assert any(getattr(event, "why", None) == text for event in seen)


# --- the report a pull request carries ----------------------------------------------------

REPORT_MD = "## Agentic tests for Cart (shop.cart)\n\n| Component | Status |\n| --- | --- |\n"


def finalize_step(**metadata) -> Interaction:
    return Interaction(
        {
            "id": "i1",
            "step_name": "Finalize",
            "command": {
                "command": "cat .spawnctl/report-x.md",
                "metadata": {"pull_request_report_file": ".spawnctl/report-x.md", **metadata},
            },
        }
    )


def test_a_context_finalize_gets_the_runs_report_written_before_its_command(tmp_path):
    server = FakeServer(report=[httpx.Response(200, text=REPORT_MD)])
    config, _ = config_for(server, tmp_path)
    context = component_session()
    context.data["type"] = "ContextTestingSessions"

    SessionJob(config, context, is_child=False)._run_step(finalize_step())

    sent = sent_result(server)
    assert sent["status"] == "ok", sent
    assert sent["stdout"] == REPORT_MD
    assert ("report", {}) in server.calls


@pytest.mark.parametrize(
    "where", ["../outside.md", "/tmp/abs.md", "report.md", ".spawnctl", "-x", "", 7]
)
def test_a_report_file_outside_the_runners_directory_is_refused_and_nothing_runs(tmp_path, where):
    server = FakeServer()
    config, _ = config_for(server, tmp_path)

    SessionJob(config, component_session(), is_child=False)._run_step(
        finalize_step(pull_request_report_file=where)
    )

    sent = sent_result(server)
    assert sent["status"] == "error"
    assert sent["error_message"].startswith("pull_request_report_file must be a relative path")
    assert "report" not in server.routes()


def test_a_report_the_server_cannot_give_fails_the_step_saying_so(tmp_path):
    server = FakeServer(report=[httpx.Response(422, json={"detail": "Only context sessions"})])
    config, _ = config_for(server, tmp_path)

    SessionJob(config, component_session(), is_child=False)._run_step(finalize_step())

    sent = sent_result(server)
    assert sent["status"] == "error"
    assert sent["error_message"] == "Could not fetch the run's report: 422: Only context sessions"
