"""The mutation gate, the runner's part: a sample of the component's source file's mutants, each
run against the component's test file, in the child's own worktree, with cosmic-ray.

Why cosmic-ray: it mutates one named file (``module-path``), runs any test command per mutant
with a time limit of its own, keeps its work in a session database whose items can be marked
skipped (so a sample is its own filter, as its ``cr-filter-*`` tools do), and records for each
mutant its position, operator, outcome and diff. mutmut 3 mutates whole source directories into
a ``mutants/`` copy, runs pytest in-process to map tests first, and reports through its own
text UI; mutatest and MutPy are unmaintained.

The steps: the session is made here (cosmic-ray's ``init`` through its API), all but the sample
marked skipped, ``cosmic-ray exec`` run as the job's command (so it is stopped like any
other), the results read back. The source file is put back byte for byte however that command
ends (stopped, timed out, failed): a run stopped between a mutation and its restore would
otherwise leave a mutant in the worktree. A runner killed outright cannot put it back; its
worktree is not used again (a takeover makes a fresh one).
"""

from __future__ import annotations

import ast
import contextlib
import os
import random
import re
import shlex
import sys
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from spawnctl.execute import GUARD, GUARDED, STOP_GRACE_SECONDS

TOOL = "cosmic-ray"
MAX_MUTANTS = 1000
MAX_MUTANT_SECONDS = 3600
MAX_TEST_COMMAND_LENGTH = 4000
# What a survivor's change may say (the server refuses longer texts).
MAX_CHANGE_LENGTH = 1000
MAX_SURVIVORS = 100
# cosmic-ray's own output for a test run it stopped at the time limit.
TIMEOUT_OUTPUT = "timeout"
# A line of a failing test run's output that says what went wrong.
_NAMES_AN_ERROR = re.compile(r"Error\b|^FAILED |^ERROR\b|error:|No module named|not found")
# Beyond the mutants' own limits: cosmic-ray's start and its bookkeeping.
EXEC_GRACE_SECONDS = 60
NEEDS_TOOL = (
    "VerifyTests: the project's mutation gate needs cosmic-ray where spawnctl runs: "
    "pip install 'cosmic-ray>=8.4'"
)
BASELINE_FAILED = (
    "VerifyTests: the mutation gate's test command fails on the unchanged code, so no mutant "
    "could be judged"
)
NEEDS_WORKTREE = (
    "VerifyTests: the project's mutation gate changes the source file while it runs, so it "
    "runs only in a child's own worktree, not in a shared working copy (run without "
    "--isolation shared)"
)


@dataclass(frozen=True)
class Plan:
    """``metadata.mutation`` of a VerifyTests command, checked."""

    source_path: str
    test_command: str
    max_mutants: int
    timeout_seconds: float
    session_file: str


def plan_of(reported: Any, inside: Any) -> Plan | str | None:
    """The mutation the command asks for; None when it asks for none, the text of the first
    problem when it cannot be run. ``inside(path, under=None)`` normalises a path that stays
    in the repository (verify.inside)."""
    if reported is None:
        return None
    prefix = "VerifyTests: mutation"
    if not isinstance(reported, Mapping):
        return f"{prefix} must be an object, not {reported!r}"
    if reported.get("tool") != TOOL:
        return f"{prefix}.tool {reported.get('tool')!r} is not one this runner has ({TOOL})"
    source_path = inside(reported.get("source_path"))
    if source_path is None or not source_path.endswith(".py"):
        return (
            f"{prefix}.source_path must be a Python file inside the repository, "
            f"not {reported.get('source_path')!r}"
        )
    command = reported.get("test_command")
    if (
        not isinstance(command, str)
        or not command.strip()
        or "\0" in command
        or len(command) > MAX_TEST_COMMAND_LENGTH
    ):
        return f"{prefix}.test_command must be a command line, not {command!r}"
    count = reported.get("max_mutants")
    if not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= MAX_MUTANTS:
        return f"{prefix}.max_mutants must be an integer from 1 to {MAX_MUTANTS}, not {count!r}"
    seconds = reported.get("timeout_seconds")
    if (
        not isinstance(seconds, int | float)
        or isinstance(seconds, bool)
        or not 0 < seconds <= MAX_MUTANT_SECONDS
    ):
        return (
            f"{prefix}.timeout_seconds must be a number of seconds up to "
            f"{MAX_MUTANT_SECONDS}, not {seconds!r}"
        )
    session_file = inside(reported.get("session_file"), ".spawnctl")
    if session_file is None:
        return (
            f"{prefix}.session_file must be a relative path under .spawnctl/, "
            f"not {reported.get('session_file')!r}"
        )
    return Plan(source_path, command, count, float(seconds), session_file)


@dataclass(frozen=True)
class Prepared:
    """A session made and sampled, ready for ``cosmic-ray exec``."""

    config_file: Path
    session_file: Path
    source: Path
    original: bytes
    sampled: int

    def command(self) -> str:
        """``cosmic-ray exec``, with the Python that runs spawnctl (cosmic-ray is installed
        beside it; the test command it runs is the project's own)."""
        return _cosmic_ray("exec", str(self.config_file), str(self.session_file))

    def time_limit(self, plan: Plan) -> float:
        """The mutants' time limits together, and some to spare: a run past it is stuck."""
        return self.sampled * (plan.timeout_seconds + 5) + EXEC_GRACE_SECONDS


# cosmic-ray starts each mutant's test run in a session of its own, out of the reach of the
# job's process group: a guard (spawnctl/guard.py) leads it instead, and takes it down when
# cosmic-ray dies (the runner's stop, or the runner killed outright). "$PPID" is cosmic-ray's
# pid: the shell execs the guard, which checks its parent is still that one.
_GUARDED_TEST = 'exec "$0" -I "$1" "$PPID" {grace:g} -- /bin/sh -c "$2"'


def test_command_argv(command: str) -> list[str]:
    """The argv cosmic-ray runs for each mutant: the project's test command line in a shell,
    under a guard where the kernel has a parent-death signal."""
    if not GUARDED:
        return ["/bin/sh", "-c", command]
    script = _GUARDED_TEST.format(grace=STOP_GRACE_SECONDS)
    return ["/bin/sh", "-c", script, sys.executable, str(GUARD), command]


def _cosmic_ray(*args: str) -> str:
    # -I: cosmic-ray runs in the worktree (often with it on PYTHONPATH), whose own modules
    # (a toml.py, a click/) must not stand in for cosmic-ray's dependencies. The test runs it
    # starts still get the whole environment.
    return shlex.join([sys.executable, "-I", "-m", "cosmic_ray.cli", *args])


def baseline_problem(code: int | None, output: str, timed_out: bool, limit: float) -> str | None:
    """What the test command's run on the unchanged code says when it did not pass (a command
    that fails there would "kill" every mutant); None when it passed."""
    if timed_out:
        return (
            f"{BASELINE_FAILED}: it did not finish within {limit:.0f} s "
            "(the project's mutant_timeout_seconds)"
        )
    if code == 0:
        return None
    said = [line.strip() for line in output.splitlines() if line.strip(" =")]
    naming = [line for line in said if _NAMES_AN_ERROR.search(line)]
    shown = naming[0] if naming else said[-1] if said else f"exit code {code}"
    return f"{BASELINE_FAILED}: {shown.strip('= ')}"


def baseline_env(env: Mapping[str, str]) -> dict[str, str]:
    """The environment cosmic-ray gives each mutant's test run."""
    return {**env, "PYTHONDONTWRITEBYTECODE": "1"}


def available() -> bool:
    try:
        import cosmic_ray.commands  # noqa: F401
    except ImportError:
        return False
    return True


def prepare(repo: Path, plan: Plan) -> Prepared | str:
    """The session file with every mutant of the source file, all but a sample of
    ``plan.max_mutants`` marked skipped; the config ``cosmic-ray exec`` reads beside it. The
    text of the problem when it cannot be made."""
    if not available():
        return NEEDS_TOOL
    from cosmic_ray.commands import init
    from cosmic_ray.config import deserialize_config, serialize_config
    from cosmic_ray.util import read_python_source
    from cosmic_ray.work_db import WorkDB, use_db
    from cosmic_ray.work_item import WorkerOutcome, WorkResult

    source = (repo / plan.source_path).resolve()
    if not source.is_relative_to(repo.resolve()):
        return f"VerifyTests: {plan.source_path} is not inside the repository"
    session_file = repo / plan.session_file
    config_file = session_file.with_suffix(".toml")
    test_command = shlex.join(test_command_argv(plan.test_command))
    config = serialize_config(
        {
            "module-path": str(source),
            "timeout": plan.timeout_seconds,
            "excluded-modules": [],
            # cosmic-ray splits the command itself; a shell reads the project's line.
            "test-command": test_command,
            "distributor": {"name": "local"},
        }
    )
    try:
        if deserialize_config(config).test_command != test_command:
            raise ValueError
    except Exception:  # cosmic-ray's TOML library reads some strings back otherwise
        return (
            "VerifyTests: the test command cannot be handed to cosmic-ray as it is "
            f"(its configuration would read it back changed): {plan.test_command!r}"
        )
    try:
        original = source.read_bytes()
        session_file.parent.mkdir(parents=True, exist_ok=True)
        for made in (session_file, config_file):
            # Whatever is there (a link planted by an earlier step included) is replaced,
            # never written through.
            made.unlink(missing_ok=True)
        _write_new(config_file, config)
        text = read_python_source(source)
        with use_db(str(session_file), WorkDB.Mode.create) as database:
            init([source], database, {})
            annotations = annotation_spans(original)
            items = sorted(
                (
                    item
                    for item in database.pending_work_items
                    if not _inside(tuple(item.mutations[0].start_pos), annotations)
                ),
                key=lambda item: (
                    tuple(item.mutations[0].start_pos),
                    item.mutations[0].operator_name,
                    item.mutations[0].occurrence,
                ),
            )
            chosen = sample(
                items, plan.max_mutants, plan.source_path, lambda item: _compiles(item, text)
            )
            kept = {item.job_id for item in chosen}
            skipped = [
                item.job_id for item in database.pending_work_items if item.job_id not in kept
            ]
            if skipped:
                database.set_multiple_results(
                    skipped, WorkResult(worker_outcome=WorkerOutcome.SKIPPED)
                )
    except OSError as error:
        return f"VerifyTests: could not prepare the mutation run: {error}"
    except Exception as error:  # cosmic-ray's parser on a file it cannot read, mostly
        return f"VerifyTests: cosmic-ray could not read {plan.source_path}: {error}"
    if items and not chosen:
        return (
            f"VerifyTests: none of the {len(items)} mutants cosmic-ray made of "
            f"{plan.source_path} is Python that compiles, so none could be judged"
        )
    _forget_compiled(source)
    return Prepared(config_file, session_file, source, original, len(chosen))


def _write_new(path: Path, text: str) -> None:
    """``text`` in a file made here (never through a link left at ``path``)."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(text)


Span = tuple[tuple[int, int], tuple[int, int]]


def annotation_spans(source: bytes) -> list[Span]:
    """Where the file's type annotations are, as ((line, column), (line, column)) with
    columns in characters, as cosmic-ray counts them. A mutant there (``float | str`` made
    ``float & str``) changes nothing a test can see, so it is left out of the sample. None
    known when the file does not parse as this Python's."""
    try:
        tree = ast.parse(source)
        lines = source.decode("utf-8").splitlines()
    except (SyntaxError, ValueError, UnicodeDecodeError):
        return []

    def column(line: int, offset: int) -> int:
        # ast counts UTF-8 bytes; cosmic-ray (parso) counts characters.
        text = lines[line - 1] if 0 < line <= len(lines) else ""
        return len(text.encode("utf-8")[:offset].decode("utf-8", errors="ignore"))

    spans: list[Span] = []
    for node in ast.walk(tree):
        found: list[ast.expr | None] = []
        if isinstance(node, ast.arg):
            found.append(node.annotation)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            found.append(node.returns)
        elif isinstance(node, ast.AnnAssign):
            found.append(node.annotation)
        for annotation in found:
            if annotation is None or annotation.end_lineno is None:
                continue
            spans.append(
                (
                    (annotation.lineno, column(annotation.lineno, annotation.col_offset)),
                    (
                        annotation.end_lineno,
                        column(annotation.end_lineno, annotation.end_col_offset or 0),
                    ),
                )
            )
    return spans


def _inside(position: tuple[int, int], spans: list[Span]) -> bool:
    return any(start <= position < end for start, end in spans)


def sample(
    items: list[Any], size: int, seed: str, usable: Callable[[Any], bool] = lambda item: True
) -> list[Any]:
    """``size`` of the ``usable`` ``items``, the same ones for the same file and code (the
    order they are tried in is seeded by its path), so a later verification judges the
    mutants ImproveTests was shown; in file order."""
    order = list(range(len(items)))
    random.Random(f"spawnctl:{seed}").shuffle(order)
    picked: list[int] = []
    for index in order:
        if len(picked) == size:
            break
        if usable(items[index]):
            picked.append(index)
    return [items[index] for index in sorted(picked)]


def _compiles(item: Any, source: str) -> bool:
    """Whether the mutant is Python at all: cosmic-ray makes a few that are not (the ``*``
    before keyword-only parameters taken for a multiplication), and a test "kills" those
    by failing to import them, whatever it asserts."""
    from cosmic_ray.mutating import mutate_code
    from cosmic_ray.plugins import get_operator

    spec = item.mutations[0]
    try:
        operator = get_operator(spec.operator_name)(**(spec.operator_args or {}))
        mutated = mutate_code(source, operator, spec.occurrence)
        if mutated is None:
            return False
        with warnings.catch_warnings():
            # A mutant's "is 0" is Python all the same; the warning would reach the terminal.
            warnings.simplefilter("ignore")
            compile(mutated, "<mutant>", "exec", dont_inherit=True)
    except (SyntaxError, ValueError, TypeError):
        return False
    return True


def _forget_compiled(source: Path) -> None:
    """Drop the source's cached bytecode: a mutant as long as the original, written within the
    second of the original's mtime, would otherwise be read from the original's cache."""
    cache = source.parent / "__pycache__"
    for compiled in cache.glob(f"{source.stem}.*.pyc"):
        with contextlib.suppress(OSError):
            compiled.unlink()


def restore(prepared: Prepared) -> bool:
    """The source file as it was before the run, byte for byte; whether it had to be put back."""
    _forget_compiled(prepared.source)  # a same-size mutant's cache, whatever the bytes say
    try:
        if prepared.source.read_bytes() == prepared.original:
            return False
    except OSError:
        pass
    prepared.source.write_bytes(prepared.original)
    return True


def results(prepared: Prepared) -> dict[str, Any] | str:
    """``data.verification.mutation`` from the session's results."""
    from cosmic_ray.work_db import WorkDB, use_db
    from cosmic_ray.work_item import TestOutcome, WorkerOutcome

    counts = {"killed": 0, "survived": 0, "timed_out": 0, "incompetent": 0}
    survivors: list[dict[str, Any]] = []
    pending = 0
    incompetent_output = ""
    try:
        with use_db(str(prepared.session_file), WorkDB.Mode.open) as database:
            pending = sum(1 for _ in database.pending_work_items)
            for item, result in database.completed_work_items:
                outcome = result.worker_outcome
                if outcome in (WorkerOutcome.SKIPPED, WorkerOutcome.NO_TEST):
                    continue
                if outcome != WorkerOutcome.NORMAL or result.test_outcome in (
                    None,
                    TestOutcome.INCOMPETENT,
                ):
                    counts["incompetent"] += 1
                    incompetent_output = incompetent_output or (result.output or "")
                elif result.test_outcome == TestOutcome.SURVIVED:
                    counts["survived"] += 1
                    survivors.append(_survivor(item, result.diff or ""))
                elif (result.output or "") == TIMEOUT_OUTPUT:
                    counts["timed_out"] += 1
                else:
                    counts["killed"] += 1
    except Exception as error:  # a session file cosmic-ray cannot open
        return f"VerifyTests: could not read the mutation run's results: {error}"
    if pending:
        return f"VerifyTests: the mutation run ended with {pending} mutants not run"
    if counts["incompetent"] and not (counts["killed"] + counts["survived"] + counts["timed_out"]):
        said = [line for line in incompetent_output.splitlines() if line.strip()]
        return (
            f"VerifyTests: cosmic-ray could not run the tests on any of the "
            f"{counts['incompetent']} mutants" + (f": {said[-1].strip()}" if said else "")
        )
    survivors.sort(key=lambda found: (found["line"], found["column"], found["operator"]))
    return {
        "tool": TOOL,
        "sampled": sum(counts.values()),
        **counts,
        "survivors": survivors[:MAX_SURVIVORS],
    }


def _survivor(item: Any, diff: str) -> dict[str, Any]:
    mutation = item.mutations[0]
    line, column = mutation.start_pos
    return {
        "line": max(int(line), 1),
        "column": max(int(column), 0),
        "operator": str(mutation.operator_name)[:MAX_CHANGE_LENGTH],
        "change": change_of(diff),
    }


def change_of(diff: str) -> str:
    """A unified diff as one line: ``old -> new`` (the first changed lines, stripped; more
    lines changed are marked with "…")."""
    removed: list[str] = []
    added: list[str] = []
    for line in diff.splitlines():
        if line.startswith(("---", "+++")):
            continue
        if line.startswith("-"):
            removed.append(line[1:].strip())
        elif line.startswith("+"):
            added.append(line[1:].strip())
    if not removed and not added:
        return "(no change shown)"
    old = (removed[0] if removed else "") + (" …" if len(removed) > 1 else "")
    new = (added[0] if added else "") + (" …" if len(added) > 1 else "")
    text = f"{old or '(nothing)'} -> {new or '(nothing)'}"
    return text if len(text) <= MAX_CHANGE_LENGTH else text[: MAX_CHANGE_LENGTH - 1] + "…"
