"""What a run produced, end to end: a run whose project opens pull requests with `gh pr
create` (a stand-in on PATH): gh is called after the push with the branch, the base branch, a
title naming the context and the report, which holds every child; its URL is kept and shown;
`spawnctl report` prints the same report."""

from __future__ import annotations

import json

from tests.spawnctl.conftest import git

GH = "gh pr create --head {branch} --base {base_branch} --title {title} --body-file {report_file}"
URL = "https://github.com/example/shop/pull/7"


def test_a_run_opens_its_pull_request_with_the_report_and_keeps_its_url(workspace):
    server = workspace.server
    response = server.http.patch(
        f"projects/{server.project}/", json={"pull_request_command_template": GH}
    )
    assert response.status_code == 200, response.text
    names = ["Basket", "Coupon", "Price"]
    session = server.context("Cart", [(name, 3 - n) for n, name in enumerate(names)])
    log = workspace.root / "gh.log"

    done = workspace.run(
        "run",
        session["id"],
        "--repo",
        str(workspace.work),
        "--jobs",
        "3",
        STAND_IN_GH_LOG=str(log),
        STAND_IN_BROKEN="Shop.Cart.Coupon",
    )

    assert done.returncode == 0, done.stdout
    assert f"Pull request: {URL}" in done.stdout
    finished = server.session(session["id"])
    branch = finished["branch"]
    assert finished["state"]["pull_request_url"] == URL
    [call] = [json.loads(line) for line in log.read_text().splitlines()]
    argv = call["argv"]
    assert argv[argv.index("--head") + 1] == branch
    assert argv[argv.index("--base") + 1] == "main"
    assert argv[argv.index("--title") + 1] == "Agentic tests for Cart (Shop.Cart)"
    # The report it was handed names every child, with its test file, in the table.
    body = call["body"]
    assert body.startswith("## Agentic tests for Cart (Shop.Cart)\n")
    for child in server.children(session["id"])["results"]:
        name = child["component"]["name"]
        assert f"| {name} (`{child['component']['module_name']}`) | complete |" in body
        assert f"`{child['state']['test_file']}`" in body
    # Called after the push: the branch was on origin already, and the report file was not
    # committed.
    assert git("ls-remote", "--heads", str(workspace.origin), branch, cwd=workspace.root).strip()
    assert ".spawnctl" not in " ".join(workspace.origin_files(branch))
    status = workspace.run("status", session["id"])
    assert URL in status.stdout
    markdown = workspace.run("report", session["id"])
    assert markdown.returncode == 0, markdown.stdout
    assert f"[Pull request]({URL})." in markdown.stdout
    as_json = workspace.run("report", session["id"][:8], "--format", "json")
    assert json.loads(as_json.stdout)["pull_request_url"] == URL
