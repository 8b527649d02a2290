"""spawnctl against a live server, in a scratch repository with a bare origin: the commands
the service hands out run for real (git, pytest), the agent is the stand-in in bin/."""

from __future__ import annotations

import collections
import itertools
import json
import signal
import subprocess
import time
from pathlib import Path

from spawnctl.execute import STOP_GRACE_SECONDS
from tests.spawnctl.conftest import agent_calls, git

COMPONENT_STEPS = [
    "Initialize",
    "GenerateTestsAndFixtures",
    "RunTests",
    "VerifyTests",
    "Finalize",
]
FIXED_STEPS = [
    "Initialize",
    "GenerateTestsAndFixtures",
    "RunTests",
    "FixCompilationErrors",
    "RunTests",
    "VerifyTests",
    "Finalize",
]


def _names(children: dict) -> dict[str, dict]:
    return {child["component"]["name"]: child for child in children["results"]}


def test_a_context_completes_and_its_branch_on_origin_holds_every_test_file(workspace):
    server = workspace.server
    names = ["Basket", "Coupon", "Price", "Tax", "Shipping", "Discount"]
    context = server.context("Cart", [(name, 6 - i) for i, name in enumerate(names)])

    # Six children, three at a time, in one working copy: their git commands must not trip
    # over each other.
    done = workspace.run(
        "run",
        context["id"],
        "--repo",
        str(workspace.work),
        "--jobs",
        "3",
        "--lease-seconds",
        "20",
        "--runner",
        "laptop",
        STAND_IN_BROKEN="Shop.Cart.Coupon",
    )

    assert done.returncode == 0, done.stdout
    session = server.session(context["id"])
    assert session["status"] == "complete"
    assert session["runner"] is None  # a finished session holds no lease
    children = _names(server.children(context["id"]))
    assert {name: child["status"] for name, child in children.items()} == dict.fromkeys(
        names, "complete"
    )
    # The child whose first tests did not compile went through the fix loop and passed.
    assert server.steps(children["Coupon"]["id"]) == FIXED_STEPS
    assert server.steps(children["Basket"]["id"]) == COMPONENT_STEPS
    failed_run = server.get(f"sessions/{children['Coupon']['id']}/interactions/")["results"][-3]
    assert failed_run["step_name"] == "RunTests"
    assert failed_run["result"]["status"] == "error"
    assert "SyntaxError" in failed_run["result"]["stdout"] + failed_run["result"]["stderr"]

    branch = session["state"]["branch_name"]
    test_files = sorted(child["state"]["test_file"] for child in children.values())
    assert workspace.origin_files(branch) == sorted(["README", *test_files])
    message = git("log", "--format=%B", "-n", "1", branch, cwd=workspace.origin)
    assert message.startswith("Add tests for the Cart context")
    # The agent got its component and test file from the environment, per step.
    calls = agent_calls(workspace)
    # No child ran twice: one generation per component, one fix for the broken one.
    assert sorted((step, module) for _, step, module in calls) == sorted(
        [("GenerateTestsAndFixtures", f"Shop.Cart.{name}") for name in names]
        + [("FixCompilationErrors", "Shop.Cart.Coupon")]
    )
    assert f"Session {context['id']} is complete" in done.stdout
    # Not a terminal: one plain line per event, and the summary table's rows.
    assert "Coupon: RunTests error" in done.stdout
    assert "Coupon: session complete (attempt 1)" in done.stdout


def test_a_child_that_keeps_failing_ends_failed_and_the_run_exits_1_naming_it(workspace):
    server = workspace.server
    context = server.context("Stock", [("Shelf", 2), ("Crate", 1)])

    done = workspace.run(
        "run",
        context["id"],
        "--repo",
        str(workspace.work),
        "--jobs",
        "2",
        "--lease-seconds",
        "20",
        # Today's one working copy for every child, said so at the start.
        "--isolation",
        "shared",
        STAND_IN_FAILING="Shop.Stock.Crate",
    )

    assert done.returncode == 1, done.stdout
    assert (
        f"warning: --isolation shared: every child runs in {workspace.work} itself, so "
        "children see each other's files, an edit outside a test file is not caught, and no "
        "worktree setup command runs"
    ) in done.stdout
    assert not (workspace.work / ".git" / "spawnctl" / "worktrees").exists()
    children = _names(server.children(context["id"]))
    assert children["Shelf"]["status"] == "complete"
    assert children["Crate"]["status"] == "failed"
    reason = children["Crate"]["failure_reason"]
    assert reason.startswith("Tests still failing after 3 fix attempts")
    # The result check's message, as the service words it, names the failed child.
    assert f"Child sessions failed: Crate ({reason})" in done.stdout
    session = server.session(context["id"])
    assert session["status"] == "active"
    assert session["runner"] is None  # released on the way out


def _wait_for(predicate, timeout: float = 120, every: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError("timed out waiting")


def test_a_killed_runner_is_replaced_by_a_second_run_once_its_lease_expires(workspace):
    server = workspace.server
    context = server.context("Orders", [("Order", 2), ("Invoice", 1)])
    pids = workspace.root / "agent.pids"
    first = workspace.spawnctl(
        "run",
        context["id"],
        "--repo",
        str(workspace.work),
        "--jobs",
        "2",
        "--lease-seconds",
        "3",
        "--runner",
        "doomed",
        env=workspace.spawnctl_env(STAND_IN_DELAY="30", STAND_IN_PIDS=str(pids)),
    )
    try:
        # Killed while both children's agents are thinking.
        _wait_for(lambda: len(agent_calls(workspace)) >= 2 or first.poll() is not None)
        # Past its 3 s lease the agent still thinks: the heartbeats keep the children leased.
        time.sleep(4)
        alive = server.children(context["id"])["results"]
        assert [(c["runner"], c["stalled"]) for c in alive] == [("doomed", False)] * 2
    finally:
        first.send_signal(signal.SIGKILL)
        output, _ = first.communicate()
    assert first.returncode == -signal.SIGKILL, output
    # Its agents died with it: none is left thinking (nor writing into the working copy).
    agents = [int(pid) for pid in pids.read_text().split()]
    assert len(agents) == 2
    _wait_for(lambda: not any(_alive(pid) for pid in agents), timeout=STOP_GRACE_SECONDS + 5)
    held = server.children(context["id"])["results"]
    assert {child["runner"] for child in held} == {"doomed"}
    # Its children's worktrees are left behind, half-done.
    root = workspace.work / ".git" / "spawnctl" / "worktrees"
    left = sorted(path for path in root.iterdir() if path.is_dir())
    assert [path.name for path in left] == sorted(f"{child['id']}-1" for child in held)

    second = workspace.run(
        "run",
        context["id"],
        "--repo",
        str(workspace.work),
        "--lease-seconds",
        "10",
        "--runner",
        "heir",
    )

    assert second.returncode == 0, second.stdout
    assert "leased by doomed until" in second.stdout
    # Pruned before the heir took the children over, each then run in a fresh one.
    pruned = f"Removed 2 worktree(s) left by a runner that stopped: {left[0]}, {left[1]}"
    assert pruned in second.stdout
    assert second.stdout.index(pruned) < second.stdout.index("leased by doomed until")
    assert list(root.iterdir()) == []
    session = server.session(context["id"])
    assert session["status"] == "complete"
    children = _names(server.children(context["id"]))
    assert {child["status"] for child in children.values()} == {"complete"}
    # The step the dead runner never reported was run again by the heir.
    for child in children.values():
        assert server.steps(child["id"]) == COMPONENT_STEPS
    test_files = sorted(child["state"]["test_file"] for child in children.values())
    assert workspace.origin_files(session["state"]["branch_name"]) == ["README", *test_files]


def test_two_work_processes_share_a_context_without_running_a_child_twice(workspace):
    server = workspace.server
    names = ["Alpha", "Bravo", "Charlie", "Delta"]
    context = server.context("Fleet", [(name, 4 - i) for i, name in enumerate(names)])
    clones = [workspace.clone("clone-1"), workspace.clone("clone-2")]
    # Started before the context spawned: they wait for the children.
    workers = [
        workspace.spawnctl(
            "work",
            context["id"][:8],  # the short id, as the admin shows it
            "--repo",
            str(clone),
            "--jobs",
            "1",
            "--lease-seconds",
            "20",
            "--runner",
            f"worker-{n}",
            "--poll-seconds",
            "0.3",
            env=workspace.spawnctl_env(STAND_IN_DELAY="1"),
        )
        for n, clone in enumerate(clones, 1)
    ]
    try:
        driver = workspace.run(
            "run",
            context["id"],
            "--repo",
            str(workspace.work),
            "--jobs",
            "1",
            "--lease-seconds",
            "20",
            "--runner",
            "driver",
            "--poll-seconds",
            "0.3",
            STAND_IN_DELAY="1",
        )
        outputs = [worker.communicate(timeout=120)[0] for worker in workers]
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.communicate()

    assert driver.returncode == 0, driver.stdout
    for worker, output in zip(workers, outputs, strict=True):
        assert worker.returncode == 0, output
        assert "Waiting for Fleet to spawn its child sessions" in output
    session = server.session(context["id"])
    assert session["status"] == "complete"
    children = _names(server.children(context["id"]))
    for child in children.values():
        assert child["status"] == "complete"
        assert server.steps(child["id"]) == COMPONENT_STEPS
    generated = collections.Counter(
        module for _, step, module in agent_calls(workspace) if step == "GenerateTestsAndFixtures"
    )
    assert generated == collections.Counter(f"Shop.Fleet.{name}" for name in names)
    # Work that ran in the other clones reached the context's branch on origin.
    test_files = sorted(child["state"]["test_file"] for child in children.values())
    assert workspace.origin_files(session["state"]["branch_name"]) == ["README", *test_files]
    ran_by = [sum(f"{name}: session complete" in output for name in names) for output in outputs]
    assert sum(ran_by) + sum(f"{n}: session complete" in driver.stdout for n in names) == 4
    assert all(count >= 1 for count in ran_by), outputs


def test_status_shows_the_session_and_its_children(workspace):
    server = workspace.server
    context = server.context("Ledger", [("Entry", 1)])
    server.post(f"sessions/{context['id']}/next-command/")
    server.post(f"sessions/{context['id']}/spawn/")

    plain = workspace.run("status", context["id"])
    as_json = workspace.run("status", context["id"], "--json")

    assert plain.returncode == 0, plain.stdout
    assert "ContextTestingSessions" in plain.stdout
    assert "Entry" in plain.stdout and "active" in plain.stdout
    assert as_json.returncode == 0, as_json.stdout
    body = json.loads(as_json.stdout)
    assert body["session"]["id"] == context["id"]
    assert body["children"]["summary"]["total"] == 1
    assert body["children"]["results"][0]["component"]["name"] == "Entry"


def test_a_session_that_does_not_exist_is_exit_2(workspace):
    done = workspace.run("status", "00000000-0000-0000-0000-000000000000")
    assert done.returncode == 2
    assert "Session not found" in done.stdout


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def _start_and_wait_for_agents(
    workspace, context_id: str, agents: int, **env: str
) -> subprocess.Popen:
    runner = workspace.spawnctl(
        "run",
        context_id,
        "--repo",
        str(workspace.work),
        "--jobs",
        "2",
        "--lease-seconds",
        "20",
        "--runner",
        "interrupted",
        env=workspace.spawnctl_env(STAND_IN_DELAY="60", **env),
    )
    try:
        _wait_for(lambda: len(agent_calls(workspace)) >= agents or runner.poll() is not None)
    except AssertionError:
        runner.kill()
        raise
    assert runner.poll() is None, runner.communicate()[0]
    return runner


def test_sigterm_stops_the_commands_and_releases_the_leases_reporting_nothing(workspace):
    server = workspace.server
    context = server.context("Mail", [("Inbox", 2), ("Outbox", 1)])
    pids = workspace.root / "agent.pids"
    runner = _start_and_wait_for_agents(workspace, context["id"], 2, STAND_IN_PIDS=str(pids))

    runner.send_signal(signal.SIGTERM)
    output, _ = runner.communicate(timeout=30)

    assert runner.returncode == 143, output
    agents = [int(pid) for pid in pids.read_text().split()]
    assert len(agents) == 2 and not any(_alive(pid) for pid in agents)
    assert server.session(context["id"])["runner"] is None
    for child in server.children(context["id"])["results"]:
        assert (child["status"], child["runner"], child["leased_until"]) == ("active", None, None)
        pending = server.get(f"sessions/{child['id']}/interactions/")["results"][0]
        assert pending["step_name"] == "GenerateTestsAndFixtures"
        assert pending["result"] is None  # nothing reported: a taker-over runs the step again
    assert "released unfinished (stopped)" in output


def test_a_second_ctrl_c_exits_at_once(workspace):
    context = workspace.server.context("Chat", [("Room", 1)])
    runner = _start_and_wait_for_agents(workspace, context["id"], 1, STAND_IN_IGNORE_TERM="1")
    # Deaf to SIGTERM, the agent holds the first Ctrl-C's stop for the whole grace period.
    runner.send_signal(signal.SIGINT)
    time.sleep(0.3)
    second = time.monotonic()
    runner.send_signal(signal.SIGINT)
    runner.communicate(timeout=30)

    assert runner.returncode == 130
    assert time.monotonic() - second < STOP_GRACE_SECONDS


def test_a_token_the_server_refuses_is_exit_2(workspace):
    done = workspace.run("status", "00000000-0000-0000-0000-000000000000", "--token", "wrong")
    assert done.returncode == 2
    assert "the server refused the token (Invalid token.)" in done.stdout


def test_a_step_the_service_refuses_is_exit_1_with_its_text(workspace):
    context = workspace.server.context("Empty", [])

    done = workspace.run("run", context["id"], "--repo", str(workspace.work))

    assert done.returncode == 1, done.stdout
    assert "spawnctl: No child components found for context" in done.stdout
    assert workspace.server.session(context["id"])["runner"] is None


def test_a_codebase_goes_from_import_to_a_finished_run_in_two_commands(workspace):
    server = workspace.server
    package = workspace.work / "shop"
    package.mkdir()
    (package / "__init__.py").write_text('"""The shop."""\n')
    (package / "cart.py").write_text(
        '"""The cart."""\n\n\ndef add(item):\n    return [item]\n\n\ndef total(items):\n'
        "    return len(items)\n"
    )
    (package / "prices.py").write_text('"""Prices."""\n\n\nclass Price:\n    pass\n')
    git("add", "shop", cwd=workspace.work, env=workspace.env)
    git("commit", "-q", "-m", "the shop", cwd=workspace.work, env=workspace.env)

    # The stand-in agent's tests do not import the code they stand for: this test is about the
    # two commands, and the quality bar has end-to-end tests of its own.
    server.http.patch(f"projects/{server.project}/", json={"min_line_coverage": None})
    import_args = ("import", "--repo", str(workspace.work), "--project", server.project)
    planned = workspace.run(*import_args, "--dry-run")
    assert planned.returncode == 0, planned.stdout
    # The plan is the server's answer to the same import, rolled back.
    # Each create's fields are listed under it (indented); the rows and totals are these.
    assert [line for line in planned.stdout.splitlines() if not line.startswith(" ")][-4:] == [
        "create  shop",
        "create  shop.cart",
        "create  shop.prices",
        "3 to create, 0 to update, 0 unchanged, 0 to delete (dry run: nothing was written)",
    ]
    # Statements: prices' docstring, class and pass (3); cart's docstring, two defs and their
    # returns (5); the shop context their sum.
    priorities = [line.strip() for line in planned.stdout.splitlines() if "priority:" in line]
    assert priorities == ["priority: 8", "priority: 5", "priority: 3"]
    assert server.get(f"components/?project={server.project}")["results"] == []

    imported = workspace.run(*import_args)
    assert imported.returncode == 0, imported.stdout

    done = workspace.run(
        "run",
        "--project",
        server.project,
        "--context",
        "shop",
        "--repo",
        str(workspace.work),
        "--jobs",
        "2",
        "--lease-seconds",
        "20",
    )

    assert done.returncode == 0, done.stdout
    started = next(line for line in done.stdout.splitlines() if line.startswith("Started session"))
    session_id = started.split()[2]
    session = server.session(session_id)
    assert session["status"] == "complete"
    assert session["component"]["module_name"] == "shop"
    children = server.children(session_id)["results"]
    # The cart has two public functions, prices one class: the cart runs first.
    assert [child["component"]["module_name"] for child in children] == ["shop.cart", "shop.prices"]
    assert all(child["status"] == "complete" for child in children)
    test_files = sorted(child["state"]["test_file"] for child in children)
    assert set(test_files) <= set(workspace.origin_files(session["state"]["branch_name"]))


def test_run_needs_a_session_or_a_project_and_a_context(workspace):
    server = workspace.server
    neither = workspace.run("run", "--repo", str(workspace.work))
    unknown = workspace.run(
        "run", "--project", server.project, "--context", "nope", "--repo", str(workspace.work)
    )

    assert neither.returncode == 2
    assert "give a session id, or --project and --context" in neither.stdout
    assert unknown.returncode == 2
    assert f"project {server.project} has no component 'nope'" in unknown.stdout


def test_a_server_that_restarts_mid_run_loses_no_finished_work(workspace):
    server = workspace.server
    names = ["Anchor", "Buoy", "Compass"]
    context = server.context("Harbor", [(name, 3 - i) for i, name in enumerate(names)])
    runner = workspace.spawnctl(
        "run",
        context["id"],
        "--repo",
        str(workspace.work),
        "--jobs",
        "2",
        "--lease-seconds",
        "20",
        "--runner",
        "steady",
        env=workspace.spawnctl_env(STAND_IN_DELAY="3"),
    )
    try:
        # Two children past Initialize, their agents thinking: the server goes away (killed,
        # as a crash would) while they finish, and comes back on the same port and database.
        _wait_for(lambda: len(agent_calls(workspace)) >= 2 or runner.poll() is not None)
        assert runner.poll() is None, runner.communicate()[0]
        server.stop()
        time.sleep(5)
        server.start()
        output, _ = runner.communicate(timeout=240)
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.communicate()

    assert runner.returncode == 0, output
    assert "is unreachable" in output and "answers again" in output, output
    assert "refused a request" not in output
    session = server.session(context["id"])
    assert session["status"] == "complete"
    context_steps = server.steps(context["id"])
    assert len(context_steps) == len(set(context_steps)), context_steps
    children = _names(server.children(context["id"]))
    # Every step ran once: the results finished during the outage were sent, not run again.
    for child in children.values():
        assert child["status"] == "complete"
        assert server.steps(child["id"]) == COMPONENT_STEPS
    generated = collections.Counter(
        module for _, step, module in agent_calls(workspace) if step == "GenerateTestsAndFixtures"
    )
    assert generated == collections.Counter(f"Shop.Harbor.{name}" for name in names)
    test_files = sorted(child["state"]["test_file"] for child in children.values())
    assert workspace.origin_files(session["state"]["branch_name"]) == ["README", *test_files]


def test_a_session_is_named_by_its_short_id(workspace):
    context = workspace.server.context("Ledger", [("Entry", 1)])
    other = "1111" if context["id"].startswith("0") else "0000"

    shown = workspace.run("status", context["id"][:8], "--json")
    unknown = workspace.run("status", f"{other}ffff")
    bad = workspace.run("status", "zz-top")

    assert shown.returncode == 0, shown.stdout
    assert json.loads(shown.stdout)["session"]["id"] == context["id"]
    assert unknown.returncode == 2
    assert f"spawnctl: No session matches {other}ffff" in unknown.stdout
    assert bad.returncode == 2
    assert "spawnctl: Session id zz-top: Must be the start of a session id" in bad.stdout


def test_run_checks_its_repo_and_that_the_component_is_a_context_before_making_a_session(
    workspace,
):
    server = workspace.server
    shop = server.post(
        "components/",
        {"project": server.project, "name": "Shop", "module_name": "shop", "type": "context"},
    )
    server.post(
        "components/",
        {"project": server.project, "name": "Lonely", "module_name": "lonely", "type": "context"},
    )
    server.post(
        "components/",
        {
            "project": server.project,
            "name": "Cart",
            "module_name": "shop.cart",
            "type": "module",
            "parent_component": shop["id"],
        },
    )
    start = ("run", "--project", server.project, "--context")

    no_repo = workspace.run(*start, "shop", "--repo", str(workspace.root / "nowhere"))
    lonely = workspace.run(*start, "lonely", "--repo", str(workspace.work))

    assert no_repo.returncode == 2, no_repo.stdout
    assert "is not a directory" in no_repo.stdout
    assert lonely.returncode == 1, lonely.stdout
    assert "spawnctl: lonely is not a context: it has no child components" in lonely.stdout
    assert server.get("sessions/")["count"] == 0


def test_a_stop_while_the_server_is_away_does_not_wait_for_it(workspace):
    server = workspace.server
    context = server.context("Tide", [("Ebb", 2), ("Flow", 1)])
    runner = _start_and_wait_for_agents(workspace, context["id"], 2)
    server.stop()
    try:
        time.sleep(1)
        stopped = time.monotonic()
        runner.send_signal(signal.SIGTERM)
        output, _ = runner.communicate(timeout=60)
    finally:
        server.start()

    assert runner.returncode == 143, output
    assert time.monotonic() - stopped < STOP_GRACE_SECONDS + 10  # not --server-timeout's 300 s
    assert "released unfinished (stopped)" in output


def test_an_agent_that_always_fails_ends_its_session_failed_after_max_step_attempts(
    workspace, tmp_path
):
    """The agent itself fails every call for one component (an API that is down): the child
    fails after the project's max_step_attempts with the exact text, the runner paused
    between the attempts (1 s, then 2 s), and the run ends 1 naming the child."""
    server = workspace.server
    context = server.context("Cart", [("Basket", 2), ("Coupon", 1)])
    times = tmp_path / "times.log"

    done = workspace.run(
        "run", context["id"], "--repo", str(workspace.work), "--jobs", "2",
        "--lease-seconds", "20",
        STAND_IN_CRASH="Shop.Cart.Coupon", STAND_IN_TIMES=str(times),
    )  # fmt: skip

    assert done.returncode == 1, done.stdout
    reason = "GenerateTestsAndFixtures failed 3 times: claude: API Error 529 overloaded"
    children = _names(server.children(context["id"]))
    assert children["Coupon"]["status"] == "failed"
    assert children["Coupon"]["state"]["error"] == reason
    assert children["Basket"]["status"] == "complete"
    assert (
        server.steps(children["Coupon"]["id"]) == ["Initialize"] + ["GenerateTestsAndFixtures"] * 3
    )
    calls = [
        float(line.split()[2])
        for line in times.read_text().splitlines()
        if line.startswith("Shop.Cart.Coupon GenerateTestsAndFixtures")
    ]
    pauses = [later - earlier for earlier, later in itertools.pairwise(calls)]
    assert len(pauses) == 2
    assert pauses[0] >= 1.0 and pauses[1] >= 2.0, pauses
    assert f"Child sessions failed: Coupon ({reason})" in done.stdout
    assert "Coupon: GenerateTestsAndFixtures failed; trying again in 1 s" in done.stdout
