"""The mutation gate, the runner's part: its metadata checked as if an attacker wrote it, the
sample (its size, the same one each time), a survivor's change as one line, the outcomes read
from cosmic-ray's session (a timeout counted as caught), a real cosmic-ray run on a small module
under a real shell with a hostile path, the source put back byte for byte however the run
ends, and a job that runs no mutant in a shared working copy or beside failing tests."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from spawnctl import mutation, verify
from spawnctl.execute import execute
from spawnctl.jobs import AnyOf, SessionJob
from tests.spawnctl.test_jobs import (
    FakeServer,
    component_session,
    config_for,
    sent_result,
    verify_step,
)

cosmic_ray = pytest.importorskip("cosmic_ray", reason="the mutation gate drives cosmic-ray")

METADATA = {
    "tool": "cosmic-ray",
    "source_path": "shop/calc.py",
    "test_command": "python -m pytest -q tests/test_calc.py",
    "max_mutants": 6,
    "timeout_seconds": 20,
    "session_file": ".spawnctl/mutation-1a2b.sqlite",
}
PLAN = mutation.Plan(
    source_path="shop/calc.py",
    test_command="python -m pytest -q tests/test_calc.py",
    max_mutants=6,
    timeout_seconds=20.0,
    session_file=".spawnctl/mutation-1a2b.sqlite",
)
CALC = '''"""Arithmetic."""


def low(n):
    return n - 1
'''
WEAK = "from shop.calc import low\n\n\ndef test_low():\n    assert low(10) is not None\n"
STRONG = "from shop.calc import low\n\n\ndef test_low():\n    assert low(10) == 9\n"


def plan(**changes):
    return mutation.plan_of({**METADATA, **changes}, verify.inside)


def test_the_mutation_is_planned_from_the_verify_tests_metadata():
    assert plan() == PLAN
    assert mutation.plan_of(None, verify.inside) is None
    checked = verify.plan_of(
        "VerifyTests",
        {"runs": 1, "report_file": ".spawnctl/c.json", "report_format": "lcov",
         "mutation": METADATA},
    )  # fmt: skip
    assert checked.mutation == PLAN
    assert verify.plan_of(
        "VerifyTests",
        {"runs": 1, "report_file": ".spawnctl/c.json", "report_format": "lcov",
         "mutation": {**METADATA, "max_mutants": 0}},
    ).startswith("VerifyTests: mutation.max_mutants must be")  # fmt: skip


SOURCE = "VerifyTests: mutation.source_path must be a Python file inside the repository, not "


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        (
            {"tool": "mutmut"},
            "VerifyTests: mutation.tool 'mutmut' is not one this runner has (cosmic-ray)",
        ),
        ({"source_path": "../outside.py"}, SOURCE + "'../outside.py'"),
        ({"source_path": "/etc/hosts.py"}, SOURCE + "'/etc/hosts.py'"),
        ({"source_path": "shop/../../x.py"}, SOURCE + "'shop/../../x.py'"),
        ({"source_path": "shop/cache.go"}, SOURCE + "'shop/cache.go'"),
        ({"source_path": "shop/\0calc.py"}, SOURCE + "'shop/\\x00calc.py'"),
        ({"source_path": None}, SOURCE + "None"),
        ({"test_command": ""}, "VerifyTests: mutation.test_command must be a command line, not ''"),
        (
            {"test_command": "pytest\0; rm -rf /"},
            "VerifyTests: mutation.test_command must be a "
            "command line, not 'pytest\\x00; rm -rf /'",
        ),
        (
            {"test_command": ["pytest"]},
            "VerifyTests: mutation.test_command must be a command line, not ['pytest']",
        ),
        (
            {"max_mutants": 0},
            "VerifyTests: mutation.max_mutants must be an integer from 1 to 1000, not 0",
        ),
        (
            {"max_mutants": 1001},
            "VerifyTests: mutation.max_mutants must be an integer from 1 to 1000, not 1001",
        ),
        (
            {"max_mutants": True},
            "VerifyTests: mutation.max_mutants must be an integer from 1 to 1000, not True",
        ),
        (
            {"timeout_seconds": 0},
            "VerifyTests: mutation.timeout_seconds must be a number of seconds up to 3600, not 0",
        ),
        (
            {"timeout_seconds": "5"},
            "VerifyTests: mutation.timeout_seconds must be a number of seconds up to 3600, not '5'",
        ),
        (
            {"session_file": "shop/calc.py"},
            "VerifyTests: mutation.session_file must be a "
            "relative path under .spawnctl/, not 'shop/calc.py'",
        ),
        (
            {"session_file": ".spawnctl/../shop/calc.py"},
            "VerifyTests: mutation.session_file "
            "must be a relative path under .spawnctl/, not '.spawnctl/../shop/calc.py'",
        ),
    ],
)
def test_mutation_metadata_that_cannot_be_run_is_said(changes, problem):
    assert plan(**changes) == problem


def test_the_sample_is_its_size_in_file_order_and_the_same_each_time():
    items = list(range(100))

    first = mutation.sample(items, 20, "shop/calc.py")

    assert len(first) == 20 and first == sorted(first)
    assert mutation.sample(items, 20, "shop/calc.py") == first
    assert mutation.sample(items, 20, "shop/other.py") != first
    assert mutation.sample(items[:5], 20, "shop/calc.py") == items[:5]


@pytest.mark.parametrize(
    ("diff", "change"),
    [
        (
            "--- shop/calc.py\n+++ shop/calc.py\n@@ -5 +5 @@\n-    return n - 1\n"
            "+    return n + 1\n",
            "return n - 1 -> return n + 1",
        ),
        ("@@ -2,2 +2,2 @@\n-a = 1\n-b = 2\n+a = 2\n", "a = 1 … -> a = 2"),
        ("@@ -3 +3,0 @@\n-    @cached\n", "@cached -> (nothing)"),
        ("", "(no change shown)"),
        ("-" + "x" * 2000 + "\n+y\n", "x" * 999 + "…"),
    ],
)
def test_a_survivors_change_is_one_line(diff, change):
    assert mutation.change_of(diff) == change


def _session_with(tmp_path: Path, outcomes: list[tuple]) -> mutation.Prepared:
    """A cosmic-ray session holding one work item per outcome, as its exec would leave it."""
    from cosmic_ray.work_db import WorkDB, use_db
    from cosmic_ray.work_item import MutationSpec, WorkItem, WorkResult

    session = tmp_path / "session.sqlite"
    with use_db(str(session), WorkDB.Mode.create) as database:
        for n, (worker, test, output) in enumerate(outcomes):
            spec = MutationSpec(
                module_path=tmp_path / "calc.py", operator_name=f"core/Op{n}", occurrence=0,
                start_pos=(10 - n, 4), end_pos=(10 - n, 9),
            )  # fmt: skip
            database.add_work_item(WorkItem.single(f"job{n}", spec))
            if worker is not None:
                database.set_result(
                    f"job{n}",
                    WorkResult(
                        worker_outcome=worker,
                        test_outcome=test,
                        output=output,
                        diff=f"-    return n - {n}\n+    return n + {n}\n",
                    ),
                )
    return mutation.Prepared(tmp_path / "c.toml", session, tmp_path / "calc.py", b"", 0)


def test_outcomes_are_read_from_the_session_a_timeout_counted_as_caught(tmp_path):
    from cosmic_ray.work_item import TestOutcome, WorkerOutcome

    normal = WorkerOutcome.NORMAL
    prepared = _session_with(
        tmp_path,
        [
            (normal, TestOutcome.KILLED, "1 failed"),
            (normal, TestOutcome.KILLED, "timeout"),
            (normal, TestOutcome.SURVIVED, "1 passed"),
            (normal, TestOutcome.SURVIVED, "1 passed"),
            (normal, TestOutcome.INCOMPETENT, "Traceback"),
            (WorkerOutcome.EXCEPTION, TestOutcome.INCOMPETENT, "Traceback"),
            (WorkerOutcome.SKIPPED, None, None),  # outside the sample
            (WorkerOutcome.NO_TEST, None, None),  # no mutation possible there
        ],
    )

    found = mutation.results(prepared)

    assert found == {
        "tool": "cosmic-ray",
        "sampled": 6,
        "killed": 1,
        "survived": 2,
        "timed_out": 1,
        "incompetent": 2,
        # In file order: the third item sits on line 8, the fourth on line 7.
        "survivors": [
            {"line": 7, "column": 4, "operator": "core/Op3", "change": "return n - 3 -> "
             "return n + 3"},
            {"line": 8, "column": 4, "operator": "core/Op2", "change": "return n - 2 -> "
             "return n + 2"},
        ],
    }  # fmt: skip


def test_a_run_whose_every_mutant_was_incompetent_says_why(tmp_path):
    from cosmic_ray.work_item import TestOutcome, WorkerOutcome

    # cosmic-ray decodes the test run's output strictly: a byte that is not UTF-8 in it made
    # every mutant "incompetent", and a sample with none judged would pass the gate.
    said = "Traceback ...\nUnicodeDecodeError: 'utf-8' codec can't decode byte 0xff\n"
    prepared = _session_with(
        tmp_path,
        [(WorkerOutcome.NORMAL, TestOutcome.INCOMPETENT, said)] * 3
        + [(WorkerOutcome.SKIPPED, None, None)],
    )

    assert mutation.results(prepared) == (
        "VerifyTests: cosmic-ray could not run the tests on any of the 3 mutants: "
        "UnicodeDecodeError: 'utf-8' codec can't decode byte 0xff"
    )


def test_a_run_that_left_mutants_unrun_is_an_error(tmp_path):
    from cosmic_ray.work_item import TestOutcome, WorkerOutcome

    prepared = _session_with(
        tmp_path, [(WorkerOutcome.NORMAL, TestOutcome.KILLED, "x"), (None, None, None)]
    )

    assert mutation.results(prepared) == (
        "VerifyTests: the mutation run ended with 1 mutants not run"
    )


def _calc_repo(tmp_path: Path, test_body: str, test_file: str = "tests/test_calc.py") -> Path:
    repo = tmp_path / "repo"
    (repo / "shop").mkdir(parents=True)
    (repo / "shop" / "__init__.py").write_text("")
    (repo / "shop" / "calc.py").write_text(CALC)
    (repo / test_file).parent.mkdir(parents=True, exist_ok=True)
    (repo / test_file).write_text(test_body)
    return repo


def _environment(repo: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    env.update(
        PYTHONPATH=str(repo),
        PYTEST_DISABLE_PLUGIN_AUTOLOAD="1",
        PATH=os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")]),
    )
    return env


def _run(repo: Path, plan: mutation.Plan) -> dict:
    prepared = mutation.prepare(repo, plan)
    assert isinstance(prepared, mutation.Prepared), prepared
    execution = execute(prepared.command(), cwd=repo, env=_environment(repo), timeout=300)
    assert execution.code == 0, execution.stderr
    assert mutation.restore(prepared) is False
    return mutation.results(prepared)


def test_cosmic_ray_runs_the_sample_against_the_test_file_under_a_hostile_path(tmp_path):
    # A directory name a shell would run, quoted as the server quotes a test file.
    test_file = "tests/it's $(touch pwned) `touch pwned2`/test_calc.py"
    repo = _calc_repo(tmp_path, WEAK, test_file)
    # The repository's own modules do not stand in for cosmic-ray's dependencies (toml).
    (repo / "toml.py").write_text("raise ImportError('the repository shadowed toml')\n")
    before = (repo / "shop" / "calc.py").read_bytes()
    command = f"{shlex.quote(sys.executable)} -m pytest -q -p no:cacheprovider "
    weak = mutation.Plan(
        "shop/calc.py", command + shlex.quote(test_file), 6, 30, ".spawnctl/m.sqlite"
    )

    found = _run(repo, weak)

    assert not list(repo.rglob("pwned*")) and not list(Path.cwd().glob("pwned*"))
    assert (repo / "shop" / "calc.py").read_bytes() == before
    # Asserting only "not None", the test notices no change to the arithmetic.
    assert found["sampled"] == 6
    assert (found["killed"], found["timed_out"], found["incompetent"]) == (0, 0, 0)
    assert found["survived"] == 6 and len(found["survivors"]) == 6
    assert {s["line"] for s in found["survivors"]} == {5}
    assert all(s["change"].startswith("return n - 1 -> return n") for s in found["survivors"])

    # The same sample judged again by a test that checks the value: every mutant caught.
    (repo / test_file).write_text(STRONG)
    again = _run(repo, weak)

    assert (again["sampled"], again["killed"], again["survived"]) == (6, 6, 0)
    assert (repo / "shop" / "calc.py").read_bytes() == before


def test_the_config_hands_cosmic_ray_the_test_command_word_for_word(tmp_path):
    from cosmic_ray.config import load_config

    repo = _calc_repo(tmp_path, WEAK)
    hostile = "pytest -q 'tests/a \"b\" $(x)'\n; echo \\ done # [cosmic-ray]"
    prepared = mutation.prepare(
        repo, mutation.Plan("shop/calc.py", hostile, 3, 5, ".spawnctl/m.sqlite")
    )

    config = load_config(str(prepared.config_file))

    assert shlex.split(config.test_command) == mutation.test_command_argv(hostile)
    assert shlex.split(config.test_command)[-1] == hostile
    assert config.timeout == 5.0
    assert prepared.sampled == 3
    assert prepared.config_file.parent == repo / ".spawnctl"


def test_the_test_command_reaches_its_shell_word_for_word_through_the_guard(tmp_path):
    # What the shell that runs the project's line sees as its script, under a real shell.
    hostile = "printf '%s' \"$0\" > seen; : 'a \"b\" $(touch pwned) `touch pwned2`'"
    argv = mutation.test_command_argv(hostile)
    argv[-1] = "printf '%s' \"$0\" > seen"  # the inner shell's $0 is its name: /bin/sh

    subprocess.run(argv, cwd=tmp_path, check=True, timeout=30)

    assert (tmp_path / "seen").read_text() == "/bin/sh"
    subprocess.run(mutation.test_command_argv(hostile), cwd=tmp_path, check=True, timeout=30)
    assert not list(tmp_path.glob("pwned*"))


@pytest.mark.skipif(not mutation.GUARDED, reason="the guard needs Linux's parent-death signal")
def test_a_mutants_test_run_does_not_outlive_cosmic_ray_killed_outright(tmp_path):
    """cosmic-ray starts each test run in a session of its own: without the guard, killing it
    (as the runner's stop, or the runner's death, does) left the run going."""
    repo = _calc_repo(tmp_path, WEAK)
    line = "echo $$ > running.pid; sleep 120"
    prepared = mutation.prepare(
        repo, mutation.Plan("shop/calc.py", line, 1, 300, ".spawnctl/m.sqlite")
    )
    tool = subprocess.Popen(shlex.split(prepared.command()), cwd=repo, env=_environment(repo))
    pid_file = repo / "running.pid"
    deadline = time.monotonic() + 60
    while not pid_file.exists() or not pid_file.read_text().strip():
        assert time.monotonic() < deadline, "the mutant's test run never started"
        time.sleep(0.05)
    test_run = int(pid_file.read_text())

    tool.kill()
    tool.wait(timeout=30)

    deadline = time.monotonic() + 15
    while _alive(test_run):
        assert time.monotonic() < deadline, "the mutant's test run outlived cosmic-ray"
        time.sleep(0.1)
    mutation.restore(prepared)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


ANNOTATED = """from __future__ import annotations


def low(n: int | float, *, é: int | None = None) -> int | float:
    total: int | float = n - 1
    return total
"""


def test_mutants_inside_type_annotations_are_left_out_of_the_sample(tmp_path):
    from cosmic_ray.work_db import WorkDB, use_db

    repo = _calc_repo(tmp_path, WEAK)
    (repo / "shop" / "calc.py").write_text(ANNOTATED)
    spans = mutation.annotation_spans(ANNOTATED.encode())
    # Columns in characters: the "é" before the second annotation is two bytes in UTF-8.
    assert ((4, 11), (4, 22)) in spans and ((4, 30), (4, 40)) in spans
    assert ((4, 52), (4, 63)) in spans and ((5, 11), (5, 22)) in spans

    prepared = mutation.prepare(
        repo, mutation.Plan("shop/calc.py", "true", 1000, 5, ".spawnctl/m.sqlite")
    )

    with use_db(str(prepared.session_file), WorkDB.Mode.open) as database:
        sampled = [item.mutations[0] for item in database.pending_work_items]
        every = [item.mutations[0] for item, _ in database.completed_work_items] + sampled
    assert prepared.sampled == len(sampled) > 0
    positions = {(tuple(m.start_pos), m.operator_name) for m in sampled}
    # None in an annotation, though cosmic-ray found mutants there...
    assert not [p for p, _ in positions if any(a <= p < b for a, b in spans)]
    assert [m for m in every if any(a <= tuple(m.start_pos) < b for a, b in spans)]
    # ...and none that is not Python: the keyword-only "*" made "+" is left out, made "/"
    # (positional-only parameters) is a mutant like any other.
    assert ((4, 24), "core/ReplaceBinaryOperator_Mul_Add") not in positions
    assert ((4, 24), "core/ReplaceBinaryOperator_Mul_Div") in positions
    assert ((5, 27), "core/ReplaceBinaryOperator_Sub_Add") in positions


@pytest.mark.parametrize(
    "source",
    [
        b"\xef\xbb\xbfdef low(n):\n    return n - 1\n",  # a byte-order mark
        b"# -*- coding: latin-1 -*-\ndef low(n):\n    return n - 1  # \xe9\n",
    ],
)
def test_a_source_is_read_as_python_reads_it(tmp_path, source):
    repo = _calc_repo(tmp_path, WEAK)
    (repo / "shop" / "calc.py").write_bytes(source)

    prepared = mutation.prepare(repo, PLAN)

    assert isinstance(prepared, mutation.Prepared), prepared
    assert prepared.sampled == 6


def test_mutants_none_of_which_compile_are_said_not_passed(tmp_path):
    repo = _calc_repo(tmp_path, WEAK)
    # cosmic-ray makes only the keyword-only "*" into other operators here.
    (repo / "shop" / "calc.py").write_text("def low(*, n):\n    pass\n")

    problem = mutation.prepare(repo, PLAN)

    assert problem == (
        "VerifyTests: none of the 11 mutants cosmic-ray made of shop/calc.py is Python that "
        "compiles, so none could be judged"
    )


@pytest.mark.parametrize("line", ["printf '\\x41'", "echo \x1b[1m", "echo \x7f"])
def test_a_test_command_cosmic_rays_configuration_would_change_is_refused(tmp_path, line):
    repo = _calc_repo(tmp_path, WEAK)

    problem = mutation.prepare(
        repo, mutation.Plan("shop/calc.py", line, 3, 5, ".spawnctl/m.sqlite")
    )

    assert problem == (
        "VerifyTests: the test command cannot be handed to cosmic-ray as it is (its "
        f"configuration would read it back changed): {line!r}"
    )


def test_a_link_left_where_the_config_goes_is_replaced_not_written_through(tmp_path):
    repo = _calc_repo(tmp_path, WEAK)
    outside = tmp_path / "outside.txt"
    outside.write_text("keep me")
    (repo / ".spawnctl").mkdir()
    (repo / ".spawnctl" / "mutation-1a2b.toml").symlink_to(outside)
    (repo / ".spawnctl" / "mutation-1a2b.sqlite").symlink_to(outside)

    prepared = mutation.prepare(repo, PLAN)

    assert isinstance(prepared, mutation.Prepared), prepared
    assert outside.read_text() == "keep me"
    assert (
        not prepared.config_file.is_symlink() and "test-command" in prepared.config_file.read_text()
    )


def test_a_file_cosmic_ray_cannot_parse_is_said(tmp_path):
    repo = _calc_repo(tmp_path, WEAK)
    (repo / "shop" / "calc.py").write_bytes(b"\xff\xfe not python")

    problem = mutation.prepare(repo, PLAN)

    assert isinstance(problem, str)
    assert problem.startswith("VerifyTests: cosmic-ray could not read shop/calc.py: ")


def test_a_source_put_back_is_byte_for_byte_the_original(tmp_path):
    repo = _calc_repo(tmp_path, WEAK)
    source = repo / "shop" / "calc.py"
    original = b'"""Arithmetic."""\r\n\r\ndef low(n):\r\n    return n - 1  # \xc3\xa9\r\n'
    source.write_bytes(original)
    prepared = mutation.prepare(repo, PLAN)
    source.write_text("def low(n):\n    return n + 1\n")

    assert mutation.restore(prepared) is True
    assert source.read_bytes() == original
    assert mutation.restore(prepared) is False


# --- in a job ------------------------------------------------------------------------------


def _gated_step(**changes) -> object:
    return verify_step(
        "true",
        runs=1,
        source_path="shop/calc.py",
        test_file="tests/test_calc.py",
        report_file=".spawnctl/c.json",
        mutation={**METADATA, **changes},
    )


def test_in_a_shared_working_copy_no_mutant_is_run(tmp_path):
    repo = _calc_repo(tmp_path, WEAK)
    server = FakeServer()
    config, _ = config_for(server, repo, lease_seconds=60)

    SessionJob(config, component_session(), is_child=True)._run_step(_gated_step())

    sent = sent_result(server)
    assert (sent["status"], sent["error_message"]) == ("error", mutation.NEEDS_WORKTREE)
    assert not (repo / ".spawnctl" / "mutation-1a2b.sqlite").exists()


def test_beside_failing_tests_no_mutant_is_run_and_none_is_reported(tmp_path):
    repo = _calc_repo(tmp_path, WEAK)
    server = FakeServer()
    config, _ = config_for(server, repo, lease_seconds=60)
    failing = verify_step(
        "exit 1", runs=1, source_path="shop/calc.py", test_file="tests/test_calc.py",
        report_file=".spawnctl/c.json", mutation=METADATA,
    )  # fmt: skip

    SessionJob(config, component_session(), is_child=True)._run_step(failing)

    sent = sent_result(server)
    assert sent["status"] == "ok"
    assert sent["data"]["verification"]["runs"] == [1]
    assert sent["data"]["verification"]["mutation"] is None
    assert not (repo / ".spawnctl" / "mutation-1a2b.sqlite").exists()


@pytest.mark.parametrize(
    ("exec_line", "problem"),
    [
        # The tool dies with a mutant in place: the source is put back all the same.
        (
            "echo 'def low(n): return 0' > shop/calc.py; echo boom >&2; exit 3",
            "VerifyTests: cosmic-ray exec exited 3: boom",
        ),
        (
            "echo 'def low(n): return 0' > shop/calc.py; sleep 30",
            "VerifyTests: the mutation run took longer than 1 s",
        ),
    ],
)
def test_a_mutation_run_that_fails_says_so_and_leaves_the_source_as_it_was(
    tmp_path, monkeypatch, exec_line, problem
):
    repo = _calc_repo(tmp_path, WEAK)
    before = (repo / "shop" / "calc.py").read_bytes()
    monkeypatch.setattr(mutation.Prepared, "command", lambda self: exec_line)
    monkeypatch.setattr(mutation.Prepared, "time_limit", lambda self, plan: 1)
    server = FakeServer()
    config, seen = config_for(server, repo, lease_seconds=60)
    job = SessionJob(config, component_session(), is_child=True)
    job.worktree = SimpleNamespace(path=repo)

    found = job._mutate(PLAN, _environment(repo), AnyOf(config.stop))

    assert found == problem
    assert (repo / "shop" / "calc.py").read_bytes() == before
    assert any("shop/calc.py put back after mutation" in getattr(e, "message", "") for e in seen)


def test_the_runners_timeout_caps_the_mutation_run_too(tmp_path, monkeypatch):
    repo = _calc_repo(tmp_path, WEAK)
    monkeypatch.setattr(mutation.Prepared, "command", lambda self: "sleep 30")
    monkeypatch.setattr(mutation.Prepared, "time_limit", lambda self, plan: 3600)
    config, _ = config_for(FakeServer(), repo, lease_seconds=60, command_timeout=2)
    job = SessionJob(config, component_session(), is_child=True)
    job.worktree = SimpleNamespace(path=repo)
    started = time.monotonic()

    found = job._mutate(PLAN, _environment(repo), AnyOf(config.stop))

    assert found == "VerifyTests: the mutation run took longer than 2 s"
    assert time.monotonic() - started < 20


FAILING = "def test_low():\n    raise ImportError('No module named shop.money')\n"


def test_a_test_command_that_fails_on_the_unchanged_code_judges_no_mutant(tmp_path):
    # Failing already, it would fail on every mutant too: a score of 100% that means nothing.
    repo = _calc_repo(tmp_path, FAILING)
    server = FakeServer()
    config, _ = config_for(server, repo, lease_seconds=60)
    job = SessionJob(config, component_session(), is_child=True)
    job.worktree = SimpleNamespace(path=repo)
    command = f"{shlex.quote(sys.executable)} -m pytest -q -p no:cacheprovider tests/test_calc.py"

    found = job._mutate(
        mutation.Plan("shop/calc.py", command, 3, 30, ".spawnctl/m.sqlite"),
        _environment(repo),
        AnyOf(config.stop),
    )

    assert found.startswith(mutation.BASELINE_FAILED + ": ")
    assert "ImportError" in found
    from cosmic_ray.work_db import WorkDB, use_db

    with use_db(str(repo / ".spawnctl" / "m.sqlite"), WorkDB.Mode.open) as database:
        # No mutant was run: the only results are the skipped ones outside the sample.
        assert database.num_results == database.num_work_items - 3


@pytest.mark.parametrize(
    ("code", "output", "timed_out", "problem"),
    [
        (0, "1 passed", False, None),
        (
            1,
            "F\n=== FAILURES ===\nE   assert 1 == 2\n=== short test summary info ===\n"
            "FAILED tests/t.py::test_a - assert 1 == 2\n=== 1 failed in 0.1s ===\n",
            False,
            ": FAILED tests/t.py::test_a - assert 1 == 2",
        ),
        (1, "F\n=== 1 failed in 0.1s ===\n\n", False, ": 1 failed in 0.1s"),
        (127, "sh: 1: pytets: not found\n", False, ": sh: 1: pytets: not found"),
        (None, "", True, ": it did not finish within 30 s (the project's mutant_timeout_seconds)"),
        (2, "", False, ": exit code 2"),
    ],
)
def test_what_a_failing_baseline_says(code, output, timed_out, problem):
    said = mutation.baseline_problem(code, output, timed_out, 30)

    assert said == (None if problem is None else mutation.BASELINE_FAILED + problem)


def test_without_cosmic_ray_the_gate_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setattr(mutation, "available", lambda: False)

    assert mutation.prepare(_calc_repo(tmp_path, WEAK), PLAN) == mutation.NEEDS_TOOL
