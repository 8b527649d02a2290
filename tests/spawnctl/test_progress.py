"""The reporters: plain lines off a terminal, rich's live view and summary table on one."""

from __future__ import annotations

import io

from rich.console import Console

from spawnctl import events
from spawnctl.api import Session
from spawnctl.progress import LiveReporter, PlainReporter, describe, reporter_for
from spawnctl.text import one_line, printable

RUN = [
    events.Spawned("ctx", ("User", "Token", "Audit")),
    events.ChildrenCounted("ctx", total=3, complete=0, failed=0, cancelled=0, active=3),
    events.StepStarted("u", "User", "RunTests", True),
    events.StepStarted("t", "Token", "GenerateTestsAndFixtures", True),
    events.StepEnded("u", "User", "RunTests", "error", 1, 2300, "Tests failed (exit code 1)", True),
    events.StepStarted("u", "User", "FixCompilationErrors", True),
    events.StepStarted("a", "Audit", "Initialize", True),
    events.SessionEnded("a", "Audit", "failed", "Finalize failed", 2, True),
]


def children() -> list[Session]:
    return [
        Session({"id": "u", "status": "complete", "attempt": 1, "component": {"name": "User"}}),
        Session(
            {
                "id": "a",
                "status": "failed",
                "attempt": 2,
                "component": {"name": "Audit"},
                "failure_reason": "Finalize failed",
            }
        ),
    ]


def test_each_event_is_one_plain_line():
    out = io.StringIO()
    report = PlainReporter(out)

    for event in RUN:
        report(event)

    lines = [line.split(" ", 1)[1] for line in out.getvalue().splitlines()]
    assert lines == [
        "3 child session(s): User, Token, Audit",
        "User: RunTests started",
        "Token: GenerateTestsAndFixtures started",
        "User: RunTests error (exit 1, 2.3 s): Tests failed (exit code 1)",
        "User: FixCompilationErrors started",
        "Audit: Initialize started",
        "Audit: session failed (attempt 2): Finalize failed",
    ]


def test_lease_waits_and_the_verdict_are_said():
    assert describe(events.LeaseHeld("s", "User", "laptop-9", "2026-01-01T00:00:00Z")) == (
        "User: leased by laptop-9 until 2026-01-01T00:00:00Z; waiting to take it over"
    )
    assert describe(events.CannotContinue("Child sessions failed: A (x)")) == (
        "Child sessions failed: A (x)"
    )
    assert describe(events.Released("s", "User", "stopped", True)) == (
        "User: released unfinished (stopped)"
    )


def test_control_characters_from_the_server_never_reach_the_terminal():
    out = io.StringIO()
    PlainReporter(out)(events.StepStarted("s", "Evil\x1b[2J\rname", "RunTests", True))
    assert "\x1b" not in out.getvalue() and "\r" not in out.getvalue()
    assert "Evil\\u001b[2J\\u000dname: RunTests started" in out.getvalue()


def test_the_plain_summary_has_status_attempts_and_reason():
    out = io.StringIO()
    PlainReporter(out).summary(children())
    assert out.getvalue().splitlines() == [
        "User: complete, attempt 1",
        "Audit: failed, attempt 2: Finalize failed",
    ]


def terminal() -> Console:
    return Console(
        file=io.StringIO(), record=True, force_terminal=True, width=100, color_system=None
    )


def snapshot(report: LiveReporter) -> str:
    """The live view as it stands, rendered alone."""
    console = terminal()
    console.print(report.render())
    return console.export_text()


def test_the_live_view_shows_each_running_child_and_the_overall_bar():
    console = terminal()
    report = LiveReporter(console, refresh_per_second=1)
    for event in RUN:
        report(event)

    screen = snapshot(report)
    report.close()

    running = screen.splitlines()[:-1]
    assert len(running) == 2
    assert running[0].split() == ["User", "FixCompilationErrors", "0s"]
    assert running[1].split() == ["Token", "GenerateTestsAndFixtures", "0s"]
    assert "0/3 complete, 0 failed, 0 cancelled" in screen.splitlines()[-1]
    # Events that matter are printed above the view, the steps themselves are not.
    printed = console.export_text()
    assert "Audit: session failed (attempt 2): Finalize failed" in printed
    assert "User: RunTests started" not in printed
    assert "User: RunTests error (exit 1, 2.3 s): Tests failed (exit code 1)" in printed


def test_a_finished_child_leaves_the_view_and_the_bar_counts_what_the_server_counted():
    console = terminal()
    report = LiveReporter(console, refresh_per_second=1)
    for event in [
        *RUN,
        events.SessionEnded("u", "User", "complete", None, 1, True),
        events.ChildrenCounted("ctx", total=3, complete=1, failed=1, cancelled=0, active=1),
    ]:
        report(event)

    screen = snapshot(report)
    report.close()

    assert "1/3 complete, 1 failed, 0 cancelled" in screen
    assert [line.split()[0] for line in screen.splitlines()[:-1]] == ["Token"]


def test_with_two_runners_the_bar_counts_every_child_and_the_cancelled_ones():
    """This runner ended 2 of 6 children; another runner ended 3, and one was cancelled by a
    person: the bar shows the server's counts, not this process's own endings."""
    report = LiveReporter(terminal(), refresh_per_second=1)
    ours = [
        events.Spawned("ctx", ("A", "B", "C", "D", "E", "F")),
        events.ChildrenCounted("ctx", total=6, complete=0, failed=0, cancelled=0, active=6),
        events.StepStarted("a", "A", "Initialize", True),
        events.SessionEnded("a", "A", "complete", None, 1, True),
        events.ChildrenCounted("ctx", total=6, complete=3, failed=0, cancelled=0, active=3),
        events.StepStarted("b", "B", "Initialize", True),
        events.SessionEnded("b", "B", "failed", "Finalize failed", 1, True),
        events.ChildrenCounted("ctx", total=6, complete=4, failed=1, cancelled=1, active=0),
    ]
    for event in ours:
        report(event)

    bar = snapshot(report).splitlines()[-1]
    report.close()

    assert "4/6 complete, 1 failed, 1 cancelled" in bar


def test_the_counts_are_read_from_the_servers_summary():
    counted = events.ChildrenCounted.of(
        "ctx",
        {"total": 5, "active": 2, "complete": 1, "failed": 1, "cancelled": 1, "stalled": 1},
    )
    assert counted == events.ChildrenCounted(
        "ctx", total=5, complete=1, failed=1, cancelled=1, active=2, stalled=1
    )
    # A count the server does not send (or sends as something else) is none.
    assert events.ChildrenCounted.of("ctx", {"total": 2, "failed": "x"}) == (
        events.ChildrenCounted("ctx", total=2, complete=0, failed=0, cancelled=0)
    )


def test_a_step_tried_again_after_a_pause_is_said():
    retrying = events.Retrying("s", "User", "GenerateTestsAndFixtures", 2.0, True)
    assert describe(retrying) == "User: GenerateTestsAndFixtures failed; trying again in 2 s"
    console = terminal()
    report = LiveReporter(console, refresh_per_second=1)
    report(retrying)
    report.close()
    assert "User: GenerateTestsAndFixtures failed; trying again in 2 s" in console.export_text()


def test_the_summary_table_on_a_terminal():
    console = terminal()
    LiveReporter(console).summary(children())
    screen = console.export_text()
    header = next(line for line in screen.splitlines() if "component" in line)
    assert [word for word in header.split() if word.isalpha()] == [
        "component",
        "status",
        "attempts",
        "cost",
        "reason",
    ]
    audit = next(line for line in screen.splitlines() if "Audit" in line)
    assert "failed" in audit and "2" in audit and "Finalize failed" in audit


def test_each_child_shows_what_it_cost_when_the_server_says():
    costly = [
        Session(
            {
                "id": "u",
                "status": "complete",
                "attempt": 1,
                "component": {"name": "User"},
                "usage": {"cost_usd": 0.425, "input_tokens": 1, "output_tokens": 1},
            }
        ),
        Session({"id": "t", "status": "complete", "attempt": 1, "component": {"name": "Token"}}),
    ]
    out = io.StringIO()
    PlainReporter(out).summary(costly)
    console = terminal()
    LiveReporter(console).summary(costly)

    assert out.getvalue().splitlines() == [
        "User: complete, attempt 1, $0.43",
        "Token: complete, attempt 1",
    ]
    user = next(line for line in console.export_text().splitlines() if "User" in line)
    assert "$0.43" in user


def test_a_terminal_gets_the_live_view_and_a_pipe_plain_lines():
    assert isinstance(reporter_for(terminal()), LiveReporter)
    assert isinstance(reporter_for(Console(file=io.StringIO())), PlainReporter)


def test_the_contexts_step_shows_while_it_runs():
    report = LiveReporter(terminal(), refresh_per_second=1)
    report(events.StepStarted("ctx", "Accounts", "SpawnComponentTestingSessions", False))
    assert "Accounts  SpawnComponentTestingSessions" in snapshot(report)

    report(
        events.StepEnded(
            "ctx", "Accounts", "SpawnComponentTestingSessions", "ok", None, 0, None, False
        )
    )
    report.close()
    assert "Accounts" not in snapshot(report)


# A value that would print a line of its own, and one that would clear the screen.
FORGED = "x\n12:00:00 Session x is complete"
CLEAR = "\x1b[2J"
FORGED_SHOWN = "x\\u000a12:00:00 Session x is complete"
CLEAR_SHOWN = "\\u001b[2J"


def test_one_line_escapes_what_printable_keeps():
    assert one_line(FORGED + CLEAR) == FORGED_SHOWN + CLEAR_SHOWN
    assert one_line("a\tb\r\u2028c\u2029d\u202ee") == ("a\\u0009b\\u000d\\u2028c\\u2029d\\u202ee")
    # printable keeps a text's own lines (the server's commit messages need them).
    assert printable(FORGED) == FORGED


def _forged_events() -> list[events.Event]:
    name = f"User{FORGED}{CLEAR}"
    return [
        events.Spawned("ctx", (name, "Token")),
        events.StepStarted("u", name, "RunTests", True),
        events.StepEnded("u", name, "RunTests", "error", 1, 10, f"boom{FORGED}", True),
        events.SessionEnded("u", name, "failed", f"reason{FORGED}{CLEAR}", 1, True),
        events.LeaseHeld("u", name, f"runner{FORGED}", "2026-01-01T00:00:00Z"),
        events.Notice(f"User RunTests: the server said{FORGED}{CLEAR}"),
    ]


def _forged_children() -> list[Session]:
    return [
        Session(
            {
                "id": "a",
                "status": f"failed{CLEAR}",
                "attempt": 2,
                "component": {"name": f"Audit{FORGED}"},
                "failure_reason": f"Finalize failed{FORGED}{CLEAR}",
            }
        )
    ]


def test_a_server_value_never_prints_a_line_of_its_own_in_plain_lines():
    out = io.StringIO()
    report = PlainReporter(out)
    events_sent = _forged_events()

    for event in events_sent:
        report(event)

    lines = out.getvalue().splitlines()
    assert len(lines) == len(events_sent)
    assert all(FORGED_SHOWN in line for line in lines)
    assert "\x1b" not in out.getvalue()
    assert lines[3].split(" ", 1)[1] == (
        f"User{FORGED_SHOWN}{CLEAR_SHOWN}: session failed (attempt 1): "
        f"reason{FORGED_SHOWN}{CLEAR_SHOWN}"
    )


def test_a_server_value_never_prints_a_line_of_its_own_in_the_plain_summary():
    out = io.StringIO()
    PlainReporter(out).summary(_forged_children())
    assert out.getvalue() == (
        f"Audit{FORGED_SHOWN}: failed{CLEAR_SHOWN}, attempt 2: "
        f"Finalize failed{FORGED_SHOWN}{CLEAR_SHOWN}\n"
    )


def wide_terminal() -> Console:
    # Wide enough that rich wraps nothing: every line seen is one the reporter wrote.
    return Console(
        file=io.StringIO(), record=True, force_terminal=True, width=400, color_system=None
    )


def _forged_lines_stay_whole(screen: str) -> None:
    assert "\x1b" not in screen
    assert "12:00:00 Session x is complete" in screen
    for line in screen.splitlines():
        assert "Session x is complete" not in line or FORGED_SHOWN in line, line


def test_a_server_value_never_prints_a_line_of_its_own_in_the_live_view():
    console = wide_terminal()
    report = LiveReporter(console, refresh_per_second=1)
    for event in [*_forged_events(), events.StepStarted("t", f"Token{FORGED}", "Fix", True)]:
        report(event)

    screen = snapshot_of(report)
    report.close()

    _forged_lines_stay_whole(console.export_text())
    _forged_lines_stay_whole(screen)
    assert f"Token{FORGED_SHOWN}" in screen


def test_a_server_value_never_prints_a_line_of_its_own_in_the_summary_table():
    console = wide_terminal()
    LiveReporter(console).summary(_forged_children())
    screen = console.export_text()
    _forged_lines_stay_whole(screen)
    assert f"failed{CLEAR_SHOWN}" in screen
    assert f"Finalize failed{FORGED_SHOWN}{CLEAR_SHOWN}" in screen


def snapshot_of(report: LiveReporter) -> str:
    console = wide_terminal()
    console.print(report.render())
    return console.export_text()


def test_an_error_the_server_judged_after_exit_0_shows_no_exit_code():
    judged = events.StepEnded(
        "u", "User", "VerifyTests", "error", 0, 1800, "Files changed outside the test file: a", True
    )
    failed = events.StepEnded("u", "User", "RunTests", "error", 2, 900, "boom", True)

    assert describe(judged) == (
        "User: VerifyTests error (1.8 s): Files changed outside the test file: a"
    )
    assert describe(failed) == "User: RunTests error (exit 2, 0.9 s): boom"


def test_worktree_events_are_said():
    assert describe(events.WorktreeSetUp("u", "User", True, 1234)) == (
        "User: worktree setup ok (1.2 s)"
    )
    assert describe(events.WorktreeSetUp("u", "User", False, 50)) == (
        "User: worktree setup failed (0.1 s)"
    )
    assert describe(events.WorktreeKept("u", "User", "/r/.git/spawnctl/worktrees/u-1")) == (
        "User: worktree kept at /r/.git/spawnctl/worktrees/u-1"
    )
    assert describe(events.WorktreesPruned(("/a", "/b"))) == (
        "Removed 2 worktree(s) left by a runner that stopped: /a, /b"
    )
