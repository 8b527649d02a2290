"""The ``spawnctl`` command line: ``run``, ``work`` and ``status``.

Exit codes: 0 the session ended complete (``work``: every child finished), 1 it ended failed or
cancelled or cannot go on, 2 bad usage or a server that cannot be reached (or refuses the
token), 130 / 143 stopped by Ctrl-C / SIGTERM.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType

from rich.console import Console
from rich.table import Table
from rich.text import Text

from spawnctl.api import Api, ApiError, NotFound, Unauthorized, Unreachable
from spawnctl.jobs import STOPPED, RunnerConfig
from spawnctl.progress import Reporter, reporter_for, summary_table
from spawnctl.run import CANNOT_CONTINUE, Outcome, run_session
from spawnctl.text import printable
from spawnctl.work import ALL_FINISHED, NotAContext, work_context

DEFAULT_URL = "http://127.0.0.1:8000"
DEFAULT_JOBS = 4
DEFAULT_LEASE_SECONDS = 120
MAX_LEASE_SECONDS = 86_400
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
EXIT_SIGNAL = {signal.SIGINT: 130, signal.SIGTERM: 143}
NO_TOKEN = "No API token: give --token or set SPAWNCTL_TOKEN"


class UsageError(Exception):
    pass


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be 1 or more")
    return value


def _lease(text: str) -> int:
    value = int(text)
    if not 1 <= value <= MAX_LEASE_SECONDS:
        raise argparse.ArgumentTypeError(f"must be from 1 to {MAX_LEASE_SECONDS}")
    return value


def _seconds(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError("must be more than 0")
    return value


def build_parser() -> argparse.ArgumentParser:
    server = argparse.ArgumentParser(add_help=False)
    server.add_argument(
        "--url",
        default=os.environ.get("SPAWNCTL_URL") or DEFAULT_URL,
        help=f"the server (default: $SPAWNCTL_URL, else {DEFAULT_URL})",
    )
    server.add_argument(
        "--token",
        default=os.environ.get("SPAWNCTL_TOKEN"),
        help="an API token (default: $SPAWNCTL_TOKEN)",
    )

    runner = argparse.ArgumentParser(add_help=False)
    runner.add_argument("--repo", required=True, type=Path, help="the working copy to run in")
    runner.add_argument(
        "--jobs",
        type=_positive,
        default=DEFAULT_JOBS,
        help=f"children run at once (default {DEFAULT_JOBS}; never above the context's cap)",
    )
    runner.add_argument(
        "--runner",
        default=f"{socket.gethostname()}-{os.getpid()}",
        help="this runner's name on its leases (default: host-pid)",
    )
    runner.add_argument(
        "--lease-seconds",
        type=_lease,
        default=DEFAULT_LEASE_SECONDS,
        help=f"how long a lease lasts without a heartbeat (default {DEFAULT_LEASE_SECONDS})",
    )
    runner.add_argument(
        "--timeout", type=_seconds, default=None, help="stop a command after this many seconds"
    )
    runner.add_argument("--poll-seconds", type=_seconds, default=2.0, help=argparse.SUPPRESS)

    parser = argparse.ArgumentParser(
        prog="spawnctl", description="Run agentic test sessions against a spawnctl server."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run = commands.add_parser(
        "run", parents=[server, runner], help="drive a session (and its children) to its end"
    )
    run.add_argument("session_id", nargs="?", help="the session to drive")
    run.add_argument(
        "--project", help="with --context: start a new context testing session in this project"
    )
    run.add_argument(
        "--context",
        metavar="MODULE_NAME",
        help="with --project: the context component (by module name) the new session tests",
    )
    run.set_defaults(handler=cmd_run)
    work = commands.add_parser(
        "work", parents=[server, runner], help="claim and drive a context's children only"
    )
    work.add_argument("session_id", metavar="context_session_id")
    work.set_defaults(handler=cmd_work)
    status = commands.add_parser(
        "status", parents=[server], help="a session and its children, statuses and reasons"
    )
    status.add_argument("session_id")
    status.add_argument("--json", action="store_true", help="print JSON")
    status.set_defaults(handler=cmd_status)
    _add_import(commands, server)
    _add_mcp(commands, server)
    return parser


def _add_mcp(commands: argparse._SubParsersAction, server: argparse.ArgumentParser) -> None:
    parser = commands.add_parser(
        "mcp",
        parents=[server],
        help="serve the API to a coding agent as MCP tools and resources over stdio",
    )
    parser.add_argument(
        "--runner",
        default=os.environ.get("SPAWNCTL_RUNNER") or f"{socket.gethostname()}-mcp-{os.getpid()}",
        help="the runner name on leases when a tool call names none "
        "(default: $SPAWNCTL_RUNNER, else host-mcp-pid)",
    )
    parser.set_defaults(handler=cmd_mcp)


def cmd_mcp(args: argparse.Namespace, api: Api) -> int:
    # Imported here: the MCP SDK is heavy, and only this command needs it.
    from spawnctl.mcp_server import serve

    serve(api, runner=args.runner)
    return EXIT_OK


def _add_import(commands: argparse._SubParsersAction, server: argparse.ArgumentParser) -> None:
    parser = commands.add_parser(
        "import", parents=[server], help="describe a codebase's components to the server in bulk"
    )
    parser.add_argument("--repo", required=True, type=Path, help="the codebase to read")
    parser.add_argument("--project", required=True, help="the project's id")
    parser.add_argument(
        "--dry-run", action="store_true", help="show the server's plan, write nothing"
    )
    parser.add_argument(
        "--prune", action="store_true", help="delete the project's components not imported"
    )
    parser.add_argument("--manifest", type=Path, help="a JSON (or YAML) manifest to import")
    parser.add_argument(
        "--exclude",
        action="append",
        default=[],
        metavar="GLOB",
        help="mark modules whose name matches GLOB excluded (repeatable), e.g. 'pkg._win*'",
    )
    parser.set_defaults(handler=cmd_import)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if not args.token:
            raise UsageError(NO_TOKEN)
        with Api(args.url, args.token) as api:
            return args.handler(args, api)
    except UsageError as error:
        _say(f"spawnctl: {error}", error=True)
        return EXIT_USAGE
    except Unauthorized as error:
        _say(f"spawnctl: the server refused the token ({error.detail})", error=True)
        return EXIT_USAGE
    except ApiError as error:
        _say(f"spawnctl: {error.detail}", error=True)
        # An unreachable server or an id that names nothing is bad usage; anything else the
        # server refused is a failure.
        return EXIT_USAGE if isinstance(error, (Unreachable, NotFound)) else EXIT_FAILED


def _config(args: argparse.Namespace, api: Api, reporter: Reporter) -> RunnerConfig:
    repo = args.repo.expanduser()
    if not repo.is_dir():
        raise UsageError(f"--repo {repo} is not a directory")
    return RunnerConfig(
        api=api,
        runner=args.runner,
        repo=repo.resolve(),
        emit=reporter,
        lease_seconds=args.lease_seconds,
        command_timeout=args.timeout,
        poll_seconds=args.poll_seconds,
    )


def _drive(
    args: argparse.Namespace, api: Api, loop: Callable[[RunnerConfig], Outcome]
) -> tuple[Outcome, int | None]:
    """Run ``loop`` with the reporter and signal handling around it: the first Ctrl-C or
    SIGTERM stops running commands and releases leases, a second Ctrl-C exits at once."""
    reporter = reporter_for(Console(highlight=False))
    config = _config(args, api, reporter)
    caught: list[int] = []

    def on_signal(signum: int, frame: FrameType | None) -> None:
        if caught and signum == signal.SIGINT:
            os._exit(EXIT_SIGNAL[signal.SIGINT])
        caught.append(signum)
        config.stop.set()

    previous = {}
    if threading.current_thread() is threading.main_thread():
        for signum in EXIT_SIGNAL:
            previous[signum] = signal.signal(signum, on_signal)
    try:
        outcome = loop(config)
        reporter.close()
        if outcome.status != STOPPED:
            _summary(api, args.session_id, reporter)
    finally:
        reporter.close()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return outcome, EXIT_SIGNAL[caught[0]] if caught else None


def _summary(api: Api, session_id: str, reporter: Reporter) -> None:
    session = api.get_session(session_id)
    if session.is_context and session.child_session_ids:
        reporter.summary(api.children(session_id).results)


def _start_context_session(args: argparse.Namespace, api: Api) -> str:
    """``run --project P --context M``: a new context testing session of the component whose
    module name is M, so that a codebase goes from ``import`` to a run in two commands."""
    if args.session_id is not None:
        if args.project or args.context:
            raise UsageError("give a session id, or --project and --context, not both")
        return args.session_id
    if not (args.project and args.context):
        raise UsageError("give a session id, or --project and --context")
    component = next(
        (c for c in api.components(args.project) if c.get("module_name") == args.context), None
    )
    if component is None:
        raise UsageError(f"project {args.project} has no component {args.context!r}")
    session = api.create_context_session(args.project, str(component["id"]), agent="claude_code")
    _say(f"Started session {session.id} for {args.context}")
    return session.id


def cmd_run(args: argparse.Namespace, api: Api) -> int:
    args.session_id = _start_context_session(args, api)
    outcome, signalled = _drive(
        args, api, lambda config: run_session(config, args.session_id, jobs=args.jobs)
    )
    if signalled is not None:
        return signalled
    if outcome.status == "complete":
        _say(f"Session {args.session_id} is complete")
        return EXIT_OK
    if outcome.status == CANNOT_CONTINUE:
        _say(f"Session {args.session_id} cannot go on: {outcome.message}", error=True)
    else:
        reason = f": {outcome.message}" if outcome.message else ""
        _say(f"Session {args.session_id} is {outcome.status}{reason}", error=True)
    return EXIT_FAILED


def cmd_work(args: argparse.Namespace, api: Api) -> int:
    try:
        outcome, signalled = _drive(
            args, api, lambda config: work_context(config, args.session_id, jobs=args.jobs)
        )
    except NotAContext as error:
        raise UsageError(str(error)) from None
    if signalled is not None:
        return signalled
    if outcome.status == ALL_FINISHED:
        _say(f"Every child of {args.session_id} is finished")
    else:
        _say(f"Session {args.session_id} is {outcome.status}")
    return EXIT_OK


def _say(line: str, *, error: bool = False) -> None:
    """One line, unwrapped (a log keeps it whole), made safe for a terminal."""
    stream = sys.stderr if error else sys.stdout
    stream.write(printable(line) + "\n")
    stream.flush()


def cmd_status(args: argparse.Namespace, api: Api) -> int:
    session = api.get_session(args.session_id)
    children = api.children(session.id) if session.is_context else None
    if args.json:
        body = {"session": session.data}
        if children is not None:
            body["children"] = {
                "summary": children.summary,
                "results": [child.data for child in children.results],
            }
        sys.stdout.write(json.dumps(body, indent=2) + "\n")
        return EXIT_OK
    console = Console(highlight=False)
    facts = Table.grid(padding=(0, 2))
    facts.add_column(style="bold")
    facts.add_column()
    facts.add_row("session", Text(f"{session.id} ({session.type})"))
    if session.component:
        facts.add_row("component", Text(printable(f"{session.name} ({session.module_name})")))
    facts.add_row("status", Text(f"{session.status}, attempt {session.attempt}"))
    if session.runner:
        facts.add_row(
            "leased", Text(printable(f"by {session.runner} until {session.leased_until}"))
        )
    if session.state.get("error"):
        facts.add_row("reason", Text(printable(session.state["error"])))
    if children is not None:
        counts = ", ".join(f"{count} {name}" for name, count in children.summary.items())
        facts.add_row("children", counts)
    console.print(facts)
    if children is not None and children.results:
        console.print(summary_table(children.results))
    return EXIT_OK


def cmd_import(args: argparse.Namespace, api: Api) -> int:
    """``spawnctl.importer`` reads the rows; this door gives it the one call it makes to the
    server, which checks them (a dry run included)."""
    from spawnctl import importer

    if not args.repo.is_dir():
        raise UsageError(f"--repo {args.repo} is not a directory")
    try:
        scan = importer.collect_rows(
            repo=args.repo, manifest=args.manifest, exclude=args.exclude
        )
    except importer.ManifestError as error:
        _say(error.message, error=True)
        return EXIT_FAILED
    for warning in scan.warnings:
        _say(f"warning: {warning}", error=True)

    def post_bulk(rows: list[dict], prune: bool, dry_run: bool) -> dict:
        try:
            return api.bulk_components(args.project, rows, prune=prune, dry_run=dry_run)
        except ApiError as error:
            if error.status in (400, 409):
                raise importer.ImportRejected(error.status, error.body) from None
            raise

    return importer.run_import(
        rows=scan.rows,
        post_bulk=post_bulk,
        dry_run=args.dry_run,
        prune=args.prune,
        out=lambda line: _say(str(line)),
    )


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
