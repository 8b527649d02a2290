"""Each language's conventions as project settings: what they are, the test runner read from
package.json, the server accepting every one of them (the same validation as any change), and
the Go and Node commands run for real as the server renders them, their reports read by the
runner's readers."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest

from spawnctl import conventions, coverage_reports
from tests.api.conftest import client_for

LANGUAGES = ["python", "go", "typescript", "elixir"]


@pytest.mark.parametrize(
    ("package", "runner"),
    [
        ({"devDependencies": {"vitest": "^1.6.0", "typescript": "^5"}}, "npx vitest run"),
        ({"devDependencies": {"jest": "^29", "vitest": "^1"}}, "npx vitest run"),
        ({"dependencies": {"jest": "^29"}}, "npx jest"),
        ({"name": "semver"}, "node --test"),
        ({"devDependencies": ["vitest"]}, "node --test"),
        ([], "node --test"),
        ("not json", "node --test"),
        (None, "node --test"),
    ],
)
def test_typescript_runs_the_projects_own_runner(tmp_path, package, runner):
    if package == "not json":
        (tmp_path / "package.json").write_text("{ not json")
    elif package is not None:
        (tmp_path / "package.json").write_text(json.dumps(package))

    found = conventions.for_language("typescript", tmp_path)

    assert found.settings["test_command_template"] == f"{runner} {{test_file}}"
    assert found.settings["test_path_template"] == "{source_dir}/{source_stem}.test{source_ext}"
    assert found.settings["coverage_report_format"] == "lcov"
    assert bool(found.notes) == (runner == "node --test")


MIX_EXS = """defmodule Shop.MixProject do
  use Mix.Project

  def project, do: [app: :shop, test_coverage: [tool: ExCoveralls]]

  defp deps do
    [{:phoenix, "~> 1.7"}, { :excoveralls, "~> 0.18", only: :test }]
  end
end
"""


def test_elixir_without_excoveralls_leaves_coverage_unmeasured_and_says_so(tmp_path):
    (tmp_path / "mix.exs").write_text(MIX_EXS.replace(":excoveralls", ":credo"))

    found = conventions.for_language("elixir", tmp_path)

    assert found.settings["test_path_template"] == "test/{module_path}_test.exs"
    assert found.settings["test_command_template"] == "mix test {test_file}"
    assert found.settings["min_line_coverage"] is None
    assert "excoveralls" in found.notes[0]


def test_elixir_with_excoveralls_measures_lcov_through_it(tmp_path):
    (tmp_path / "mix.exs").write_text(MIX_EXS)

    found = conventions.for_language("elixir", tmp_path)

    assert found.settings["coverage_command_template"].startswith(
        "MIX_ENV=test mix coveralls.lcov {test_file}; "
    )
    assert found.settings["coverage_report_format"] == "lcov"
    assert "min_line_coverage" not in found.settings
    assert found.notes == []


@pytest.mark.parametrize("mix", [MIX_EXS, ""])
def test_the_server_accepts_elixirs_conventions(tmp_path, user, project, mix):
    (tmp_path / "mix.exs").write_text(mix)
    settings = conventions.for_language("elixir", tmp_path).settings

    answer = client_for(user).patch(f"/api/projects/{project.pk}/", settings, format="json")

    assert answer.status_code == 200, answer.content


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize(
    "package", [{}, {"devDependencies": {"vitest": "1"}}, {"dependencies": {"jest": "1"}}]
)
def test_the_server_accepts_every_languages_conventions(tmp_path, user, project, language, package):
    (tmp_path / "package.json").write_text(json.dumps(package))
    settings = conventions.for_language(language, tmp_path).settings

    answer = client_for(user).patch(f"/api/projects/{project.pk}/", settings, format="json")

    assert answer.status_code == 200, answer.content
    assert {key: answer.json()[key] for key in settings} == settings


def _rendered(settings: dict, test_file: str, source_path: str, report_file: str) -> str:
    """The coverage command as the server hands it to the runner."""
    from sessions_app.workflows import conventions as server_conventions

    project = SimpleNamespace(**settings)
    return server_conventions.coverage_command(project, test_file, source_path, report_file)


GO_SAMPLE = Path(__file__).resolve().parent / "fixtures" / "coverage" / "go"


@pytest.mark.skipif(shutil.which("go") is None, reason="needs Go (Debian's golang-go)")
def test_gos_coverage_command_writes_a_profile_the_runner_reads(tmp_path):
    repo = tmp_path / "shop"
    shutil.copytree(GO_SAMPLE, repo)
    (repo / "store" / "cache_test.go.txt").rename(repo / "store" / "cache_test.go")
    (repo / ".spawnctl").mkdir()
    settings = conventions.for_language("go", repo).settings
    command = _rendered(settings, "store/cache_test.go", "store/cache.go", ".spawnctl/c.out")

    ran = subprocess.run(
        ["bash", "-c", command], cwd=repo, capture_output=True, text=True, timeout=300,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "GOCACHE": str(tmp_path / "cache"),
             "GOFLAGS": "-mod=mod", "GOPROXY": "off"},
    )  # fmt: skip

    assert ran.returncode == 0, ran.stdout + ran.stderr
    report = coverage_reports.read_report(repo / ".spawnctl" / "c.out", "go-cover", repo)
    assert report["store/cache.go"] == coverage_reports.FileCoverage(
        11, 4, (14, 15, 19, 20, 21, 22, 23)
    )


def _node_writes_lcov() -> bool:
    node = shutil.which("node")
    if node is None:
        return False
    probe = subprocess.run(
        [node, "--test", "--test-reporter=lcov", "--test-reporter-destination=/dev/null", "-e", ""],
        capture_output=True,
        text=True,
    )
    return "lcov" not in probe.stderr


@pytest.mark.skipif(not _node_writes_lcov(), reason="needs Node 20.11 or later (its lcov reporter)")
def test_nodes_coverage_command_writes_lcov_the_runner_reads(tmp_path):
    repo = tmp_path / "semverish"
    (repo / "lib").mkdir(parents=True)
    (repo / ".spawnctl").mkdir()
    (repo / "package.json").write_text('{"name": "semverish"}')
    (repo / "lib" / "range.js").write_text(
        "function clamp(value, low, high) {\n  if (value < low) return low;\n"
        "  if (value > high) return high;\n  return value;\n}\nmodule.exports = { clamp };\n"
    )
    (repo / "lib" / "range.test.js").write_text(
        "const test = require('node:test');\nconst assert = require('node:assert');\n"
        "const { clamp } = require('./range.js');\n"
        "test('clamps below', () => { assert.strictEqual(clamp(-1, 0, 10), 0); });\n"
    )
    settings = conventions.for_language("typescript", repo).settings
    command = _rendered(settings, "lib/range.test.js", "lib/range.js", ".spawnctl/c.info")

    ran = subprocess.run(["bash", "-c", command], cwd=repo, capture_output=True, text=True)

    assert ran.returncode == 0, ran.stdout + ran.stderr
    report = coverage_reports.read_report(repo / ".spawnctl" / "c.info", "lcov", repo)
    measured = report["lib/range.js"]
    assert (measured.lines_total, measured.lines_covered, measured.missing_lines) == (6, 4, (3, 4))
    assert (measured.branches_total, measured.branches_covered) == (3, 2)
