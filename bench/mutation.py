"""Benchmark: what the mutation gate costs per component, on the end-to-end test's sample
module (``tests/spawnctl/fixtures/mutation/pricing.py``) with each of its two test files.

For each test file (``weak``: runs every line, asserts almost nothing; ``strong``: checks the
values and limits) and each sample size it runs the runner's own pieces, as a VerifyTests
with a mutation plan does (``spawnctl/mutation.py``), in a scratch directory:

- ``prepare``: cosmic-ray's session made and sampled (every mutant found, the non-Python ones
  and those in annotations left out, the rest beyond the sample marked skipped);
- ``baseline``: the test command once on the unchanged code;
- ``exec``: ``cosmic-ray exec`` over the sample (each mutant written, the test file run, the
  source put back);
- ``total`` and ``per mutant`` (exec over the mutants run), with the mutants' outcomes.

    .venv/bin/python bench/mutation.py [--repeat 3] [--sizes 10 20]

It prints a table, writes JSON (default ``bench/results/mutation.json``) and exits 1 when a
run does not give the expected outcome (the strong tests must catch every mutant, the weak
ones must let some through) or the source is not byte for byte what it was.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from spawnctl import mutation  # noqa: E402
from spawnctl.execute import execute  # noqa: E402

SAMPLE = ROOT / "tests" / "spawnctl" / "fixtures" / "mutation"
DRAFTS = {"weak": "weak_draft.py", "strong": "strong_draft.py"}
TEST_FILE = "tests/test_pricing.py"
SOURCE = "shop/pricing.py"


def scratch(draft: str) -> Path:
    repo = Path(tempfile.mkdtemp(prefix="spawnctl-mutation-bench-"))
    (repo / "shop").mkdir()
    (repo / "shop" / "__init__.py").write_text("")
    shutil.copy(SAMPLE / "pricing.py", repo / SOURCE)
    (repo / "tests").mkdir()
    shutil.copy(SAMPLE / DRAFTS[draft], repo / TEST_FILE)
    return repo


def environment(repo: Path) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key != "DJANGO_SETTINGS_MODULE"}
    env.update(PYTHONPATH=str(repo), PYTEST_DISABLE_PLUGIN_AUTOLOAD="1")
    return env


def once(draft: str, size: int, timeout: float) -> dict:
    repo = scratch(draft)
    try:
        original = (repo / SOURCE).read_bytes()
        command = f"{shlex.quote(sys.executable)} -m pytest -q -p no:cacheprovider {TEST_FILE}"
        plan = mutation.Plan(SOURCE, command, size, timeout, ".spawnctl/mutation-bench.sqlite")
        env = environment(repo)
        started = time.perf_counter()
        prepared = mutation.prepare(repo, plan)
        if isinstance(prepared, str):
            raise SystemExit(prepared)
        prepared_at = time.perf_counter()
        baseline = execute(command, cwd=repo, env=mutation.baseline_env(env), timeout=timeout)
        if not baseline.ok:
            raise SystemExit(f"the {draft} tests fail on the unchanged code:\n{baseline.stdout}")
        baseline_at = time.perf_counter()
        run = execute(prepared.command(), cwd=repo, env=env, timeout=prepared.time_limit(plan))
        done = time.perf_counter()
        restored = mutation.restore(prepared)
        if run.code != 0:
            raise SystemExit(f"cosmic-ray exec exited {run.code}:\n{run.stderr}")
        found = mutation.results(prepared)
        if isinstance(found, str):
            raise SystemExit(found)
        unchanged = (repo / SOURCE).read_bytes() == original and not restored
        return {
            "prepare_s": prepared_at - started,
            "baseline_s": baseline_at - prepared_at,
            "exec_s": done - baseline_at,
            "total_s": done - started,
            "sampled": found["sampled"],
            "killed": found["killed"],
            "survived": found["survived"],
            "timed_out": found["timed_out"],
            "incompetent": found["incompetent"],
            "source_unchanged": unchanged,
        }
    finally:
        shutil.rmtree(repo, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 20])
    parser.add_argument("--timeout", type=float, default=30, help="each mutant's limit (s)")
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "results" / "mutation.json")
    args = parser.parse_args()
    if not mutation.available():
        print(mutation.NEEDS_TOOL, file=sys.stderr)
        return 2
    rows = []
    failed = []
    for draft in DRAFTS:
        for size in args.sizes:
            runs = [once(draft, size, args.timeout) for _ in range(args.repeat)]
            last = runs[-1]
            median = {
                key: statistics.median(run[key] for run in runs)
                for key in ("prepare_s", "baseline_s", "exec_s", "total_s")
            }
            judged = last["killed"] + last["timed_out"] + last["survived"]
            row = {
                "tests": draft,
                "max_mutants": size,
                **median,
                "per_mutant_s": median["exec_s"] / last["sampled"] if last["sampled"] else None,
                **{key: last[key] for key in ("sampled", "killed", "survived", "timed_out")},
                "incompetent": last["incompetent"],
                "mutation_score": (
                    (last["killed"] + last["timed_out"]) * 1000 // judged / 10 if judged else None
                ),
                "same_outcome_every_run": all(
                    (run["killed"], run["survived"]) == (last["killed"], last["survived"])
                    for run in runs
                ),
                "source_unchanged": all(run["source_unchanged"] for run in runs),
            }
            rows.append(row)
            if draft == "strong" and row["survived"]:
                failed.append(f"the strong tests let {row['survived']} mutants through")
            if draft == "weak" and not row["survived"]:
                failed.append("the weak tests caught every mutant")
            if not row["source_unchanged"] or not row["same_outcome_every_run"]:
                failed.append(f"{draft}/{size}: source changed or outcomes differ between runs")
    header = (
        f"{'tests':<7} {'mutants':>7} {'prepare':>8} {'baseline':>8} {'exec':>7} "
        f"{'total':>7} {'/mutant':>8} {'killed':>6} {'survived':>8} {'score':>6}"
    )
    print(header)
    for row in rows:
        print(
            f"{row['tests']:<7} {row['sampled']:>7} {row['prepare_s']:>7.2f}s "
            f"{row['baseline_s']:>7.2f}s {row['exec_s']:>6.2f}s {row['total_s']:>6.2f}s "
            f"{row['per_mutant_s']:>7.3f}s {row['killed']:>6} {row['survived']:>8} "
            f"{row['mutation_score']:>5}%"
        )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(
        json.dumps(
            {
                "machine": {
                    "python": platform.python_version(),
                    "platform": platform.platform(),
                    "cpus": os.cpu_count(),
                },
                "repeat": args.repeat,
                "mutant_timeout_s": args.timeout,
                "rows": rows,
            },
            indent=2,
        )
        + "\n"
    )
    for problem in failed:
        print(f"FAILED: {problem}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
