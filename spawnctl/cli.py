"""The ``spawnctl`` command line: ``run``, ``work`` and ``status``.

Exit codes: 0 the session ended complete (``work``: every child finished), 1 it ended failed or
cancelled or cannot go on (or cannot start), 2 bad usage (a URL the token may not be sent to,
a token file that holds none, a server that redirects elsewhere) or a server that cannot be
reached (or refuses the token), 130 / 143 stopped by Ctrl-C / SIGTERM.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import signal
import socket
import stat
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import FrameType
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table
from rich.text import Text

from spawnctl import events, worktrees
from spawnctl.api import (
    SERVER_TIMEOUT_SECONDS,
    Api,
    ApiError,
    NotFound,
    Redirected,
    Session,
    Unauthorized,
    Unreachable,
    base_url,
    dollars,
)
from spawnctl.importer import CONTEXT
from spawnctl.jobs import BUDGET, STOPPED, RunnerConfig, repository_lock
from spawnctl.progress import Reporter, reporter_for, summary_table
from spawnctl.run import CANNOT_CONTINUE, Outcome, run_session
from spawnctl.text import one_line, printable
from spawnctl.tree_scan import LANGUAGES
from spawnctl.work import ALL_FINISHED, NotAContext, work_context
from spawnctl.work import BUDGET as WORK_BUDGET
from spawnctl.worktrees import WorktreeError, Worktrees

DEFAULT_URL = "http://127.0.0.1:8000"
IMPORT_LANGUAGES = ("auto", *LANGUAGES)
DEFAULT_JOBS = 4
DEFAULT_LEASE_SECONDS = 120
MAX_LEASE_SECONDS = 86_400
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
EXIT_SIGNAL = {signal.SIGINT: 130, signal.SIGTERM: 143}
NO_TOKEN = "No API token: give --token or set SPAWNCTL_TOKEN"
TOKEN_ORDER = "--token, --token-file, $SPAWNCTL_TOKEN, $SPAWNCTL_TOKEN_FILE"
# Plain http lets anyone on the path read the token: only to this machine, or when asked.
INSECURE_HTTP = (
    "{url} is plain http to {host}, which is not this machine: the API token would travel in "
    "clear text. Use an https:// URL, or give --insecure-http (or set SPAWNCTL_INSECURE_HTTP=1) "
    "on a network you trust"
)
NOT_HTTP = "{url} is not a server URL: it must start with https:// (or http://)"
LOOPBACK_NAMES = ("localhost",)
# Read permissions for the file's group and the others: ssh refuses such a key; a token file
# is still read (a shared CI box may have no other way), with a warning.
OTHERS_READ = stat.S_IRGRP | stat.S_IROTH
# How long the commands that are not runners (status, import, mcp) wait for a server that is
# away: a person or an agent is waiting on the answer.
QUICK_SERVER_TIMEOUT = 5.0
ID_HELP = "its id, or the start of it: the short id the admin shows"
NO_SESSION = "No session matches {prefix}"
# The server's words for the same mistake (sessions_app.selectors.AMBIGUOUS_ID).
AMBIGUOUS_ID = "Session id {prefix} is ambiguous; it matches {matches}"
MAX_NAMED_MATCHES = 10
NOT_A_CONTEXT = "{module} is not a context: it has no child components"
WORKTREE, SHARED = "worktree", "shared"
NOT_A_GIT_REPO = (
    "--repo {repo} is not a git working copy: each child runs in a git worktree of it "
    "(--isolation shared runs every child in --repo itself)"
)
NOT_THE_TOP = (
    "--repo {repo} is inside the git working copy {top}: a child's worktree holds the whole "
    "repository, so --repo must be its top directory (or run with --isolation shared)"
)
SHARED_WARNING = (
    "--isolation shared: every child runs in {repo} itself, so children see each other's "
    "files, an edit outside a test file is not caught, and no worktree setup command runs"
)
ALL_EXCLUDED = "{module} is not a context: every one of its child components is excluded"


class UsageError(Exception):
    pass


class CannotStart(Exception):
    """The run cannot start as asked (exit 1); nothing was created."""


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


def _non_negative(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError("must be 0 or more")
    return value


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def build_parser() -> argparse.ArgumentParser:
    server = argparse.ArgumentParser(add_help=False)
    server.add_argument(
        "--url",
        default=os.environ.get("SPAWNCTL_URL") or DEFAULT_URL,
        help=f"the server (default: $SPAWNCTL_URL, else {DEFAULT_URL})",
    )
    server.add_argument(
        "--token",
        help="an API token (shows in ps: --token-file keeps it off the command line); "
        f"the first given of {TOKEN_ORDER} is used",
    )
    server.add_argument(
        "--token-file",
        type=Path,
        metavar="PATH",
        help="a file whose first line is the API token (keep it chmod 600); "
        f"the first given of {TOKEN_ORDER} is used",
    )
    server.add_argument(
        "--insecure-http",
        action="store_true",
        default=_env_flag("SPAWNCTL_INSECURE_HTTP"),
        help="allow a plain http:// URL to a host other than this machine: the token then "
        "travels in clear text (default: $SPAWNCTL_INSECURE_HTTP=1)",
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
    runner.add_argument(
        "--server-timeout",
        type=_non_negative,
        default=SERVER_TIMEOUT_SECONDS,
        metavar="SECONDS",
        help="how long a server that is away (or answers 502/503/504) is waited for "
        f"(default {SERVER_TIMEOUT_SECONDS:g})",
    )
    runner.add_argument(
        "--isolation",
        choices=(WORKTREE, SHARED),
        default=WORKTREE,
        help="worktree (default): each child runs in a git worktree of its own; shared: every "
        "child runs in --repo itself",
    )
    runner.add_argument(
        "--worktrees",
        type=Path,
        metavar="DIR",
        help="where the children's worktrees go (default: .git/spawnctl/worktrees of --repo)",
    )
    runner.add_argument(
        "--keep-worktrees",
        action="store_true",
        help="leave a failed child's worktree in place, and say where, for a look",
    )
    runner.add_argument("--poll-seconds", type=_seconds, default=2.0, help=argparse.SUPPRESS)
    runner.add_argument("--retry-pause", type=_non_negative, default=1.0, help=argparse.SUPPRESS)

    parser = argparse.ArgumentParser(
        prog="spawnctl", description="Run agentic test sessions against a spawnctl server."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run = commands.add_parser(
        "run", parents=[server, runner], help="drive a session (and its children) to its end"
    )
    run.add_argument("session_id", nargs="?", help=f"the session to drive ({ID_HELP})")
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
    work.add_argument("session_id", metavar="context_session_id", help=ID_HELP)
    work.set_defaults(handler=cmd_work)
    status = commands.add_parser(
        "status", parents=[server], help="a session and its children, statuses and reasons"
    )
    status.add_argument("session_id", help=ID_HELP)
    status.add_argument("--json", action="store_true", help="print JSON")
    report = commands.add_parser(
        "report",
        parents=[server],
        help="what a context session's run produced: the Markdown a pull request carries",
    )
    report.add_argument("session_id", help=ID_HELP)
    report.add_argument(
        "--format", choices=("md", "json"), default="md", help="md (default) or json"
    )
    report.set_defaults(handler=cmd_report)
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
    parser.add_argument(
        "--include",
        action="append",
        default=[],
        metavar="GLOB",
        help="keep what a Python scan leaves out by default (build/, dist/, examples/, "
        "__main__ and version-only modules) where GLOB matches the module name or path "
        "(repeatable)",
    )
    parser.add_argument(
        "--language",
        choices=IMPORT_LANGUAGES,
        default="auto",
        help="how to read the codebase (default auto: go.mod is Go, mix.exs Elixir, "
        "package.json or tsconfig.json TypeScript/JavaScript, else Python)",
    )
    parser.add_argument(
        "--override",
        type=Path,
        metavar="FILE",
        help="a manifest (JSON or YAML) whose rows change what the scan found, matched by "
        "module_name: name, type, description, priority, excluded",
    )
    parser.add_argument(
        "--conventions",
        action="store_true",
        help="first set the project's test path, test command, coverage command and report "
        "format to the language's conventions (docs/import.md lists them)",
    )
    parser.set_defaults(handler=cmd_import)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        url = server_url(args.url, insecure_http=args.insecure_http)
        token = api_token(args)
        if not token:
            raise UsageError(NO_TOKEN)
        server_timeout = getattr(args, "server_timeout", QUICK_SERVER_TIMEOUT)
        with Api(url, token, server_timeout=server_timeout) as api:
            return args.handler(args, api)
    except UsageError as error:
        _say(f"spawnctl: {error}", error=True)
        return EXIT_USAGE
    except CannotStart as error:
        _say(f"spawnctl: {error}", error=True)
        return EXIT_FAILED
    except Unauthorized as error:
        _say(f"spawnctl: the server refused the token ({error.detail})", error=True)
        return EXIT_USAGE
    except Unreachable as error:
        _say(f"spawnctl: {error.explanation}", error=True)
        return EXIT_USAGE
    except Redirected as error:
        # Another URL names the server: the one given is the mistake.
        _say(f"spawnctl: {error.detail}", error=True)
        return EXIT_USAGE
    except ApiError as error:
        _say(f"spawnctl: {error.detail}", error=True)
        # An id that names nothing is bad usage; anything else the server refused is a
        # failure.
        return EXIT_USAGE if isinstance(error, NotFound) else EXIT_FAILED


def server_url(url: str, *, insecure_http: bool = False) -> str:
    """The server's root as given, if the token may be sent there: https anywhere, plain
    http to this machine (or anywhere with ``insecure_http``), nothing else."""
    root = base_url(url)
    try:
        parsed = httpx.URL(root)
    except httpx.InvalidURL:
        raise UsageError(NOT_HTTP.format(url=url.strip())) from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise UsageError(NOT_HTTP.format(url=url.strip()))
    if parsed.scheme == "http" and not insecure_http and not is_loopback(parsed.host):
        raise UsageError(INSECURE_HTTP.format(url=root, host=parsed.host))
    return root


def is_loopback(host: str) -> bool:
    """``localhost``, 127.0.0.0/8 or ::1: a host whose traffic never leaves this machine."""
    if host.lower().rstrip(".") in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def api_token(args: argparse.Namespace, environ: Mapping[str, str] = os.environ) -> str | None:
    """The first given of --token, --token-file, $SPAWNCTL_TOKEN, $SPAWNCTL_TOKEN_FILE: this
    command line's word over the environment's (a shell's exports outlive the command), and in
    each the token over a file."""
    if args.token:
        return args.token
    if args.token_file is not None:
        return read_token_file(args.token_file, "--token-file")
    if environ.get("SPAWNCTL_TOKEN"):
        return environ["SPAWNCTL_TOKEN"]
    if environ.get("SPAWNCTL_TOKEN_FILE"):
        return read_token_file(Path(environ["SPAWNCTL_TOKEN_FILE"]), "SPAWNCTL_TOKEN_FILE")
    return None


def read_token_file(path: Path, given_by: str) -> str:
    """The token on the first line of ``path``; a file that others may read is used, with
    a warning, as ssh warns of a key (but ssh refuses it)."""
    path = path.expanduser()
    try:
        # utf-8-sig: an editor's byte-order mark is no part of the token.
        with path.open(encoding="utf-8-sig") as handle:
            mode = os.fstat(handle.fileno()).st_mode
            first = handle.readline()
    except FileNotFoundError:
        raise UsageError(f"{given_by} {path}: no such file") from None
    except OSError as error:
        raise UsageError(f"{given_by} {path}: cannot read it: {error.strerror}") from None
    except UnicodeDecodeError:
        raise UsageError(f"{given_by} {path}: is not a text file") from None
    token = first.strip()
    if not token:
        raise UsageError(f"{given_by} {path}: its first line holds no token")
    if os.name == "posix" and mode & OTHERS_READ:
        _say(
            f"spawnctl: warning: the token file {path} can be read by others "
            f"(permissions {stat.S_IMODE(mode):04o}); chmod 600 {path} keeps it yours",
            error=True,
        )
    return token


def _repo(args: argparse.Namespace) -> Path:
    repo = args.repo.expanduser()
    if not repo.is_dir():
        raise UsageError(f"--repo {repo} is not a directory")
    return repo.resolve()


def _worktrees(args: argparse.Namespace, repo: Path) -> Worktrees | None:
    """The children's worktrees (None with ``--isolation shared``): --repo must be a git
    working copy then, checked before anything starts."""
    if args.isolation == SHARED:
        return None
    if worktrees.git_common_dir(repo) is None:
        top = worktrees.toplevel_of(repo)
        if top is not None and top != repo:
            raise UsageError(NOT_THE_TOP.format(repo=repo, top=top))
        raise UsageError(NOT_A_GIT_REPO.format(repo=repo))
    root = args.worktrees.expanduser().resolve() if args.worktrees else None
    if root is not None and root.exists() and not root.is_dir():
        raise UsageError(f"--worktrees {root} is not a directory")
    return Worktrees(repo, root, repository_lock=lambda: repository_lock(repo))


def _config(args: argparse.Namespace, api: Api, reporter: Reporter) -> RunnerConfig:
    repo = _repo(args)
    return RunnerConfig(
        api=api,
        runner=args.runner,
        repo=repo,
        worktrees=_worktrees(args, repo),
        keep_worktrees=args.keep_worktrees,
        emit=reporter,
        lease_seconds=args.lease_seconds,
        # A stop also ends a request's wait for a server that is away.
        stop=api.stop,
        command_timeout=args.timeout,
        poll_seconds=args.poll_seconds,
        retry_pause=args.retry_pause,
    )


def resolve_session_id(api: Api, text: str) -> str:
    """The session a person named: a full id as it is, or a prefix of one (the short id the
    admin and the management commands show) as the one session it starts."""
    try:
        return str(uuid.UUID(text.strip()))
    except ValueError:
        pass
    prefix = text.strip()
    try:
        page = api.sessions(id_prefix=prefix, page_size=MAX_NAMED_MATCHES + 1)
    except ApiError as error:
        if error.status != 400:
            raise
        body = error.body if isinstance(error.body, dict) else {}
        why = body.get("id_prefix")
        raise UsageError(
            f"Session id {prefix}: {why[0] if isinstance(why, list) and why else error.detail}"
        ) from None
    digits = prefix.lower().replace("-", "")
    # A server that does not know the filter lists every session: none of those is taken.
    matches = sorted(
        (
            Session(row)
            for row in page.get("results") or []
            if str(row.get("id", "")).replace("-", "").startswith(digits)
        ),
        key=lambda session: str(session.data.get("created_at") or ""),
    )
    if not matches:
        raise UsageError(NO_SESSION.format(prefix=prefix))
    if len(matches) == 1:
        return matches[0].id
    named = ", ".join(
        f"{match.id} ({match.component['name'] if match.component else f'session {match.id}'})"
        for match in matches[:MAX_NAMED_MATCHES]
    )
    if max(len(matches), int(page.get("count") or 0)) > MAX_NAMED_MATCHES:
        named += " and more"
    raise UsageError(AMBIGUOUS_ID.format(prefix=prefix, matches=named))


def _drive(
    args: argparse.Namespace, api: Api, loop: Callable[[RunnerConfig], Outcome]
) -> tuple[Outcome, int | None]:
    """Run ``loop`` with the reporter and signal handling around it: the first Ctrl-C or
    SIGTERM stops running commands and releases leases, a second Ctrl-C exits at once."""
    reporter = reporter_for(Console(highlight=False))
    config = _config(args, api, reporter)
    api.on_outage = lambda text: reporter(events.Notice(text))
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
        if config.worktrees is None:
            reporter(events.Notice(SHARED_WARNING.format(repo=config.repo)))
        if config.worktrees is not None:
            # Before any child is taken over: what a runner that died left behind.
            try:
                pruned = config.worktrees.prune()
            except (WorktreeError, OSError, subprocess.SubprocessError) as error:
                reporter(events.Notice(f"could not prune old worktrees: {error}"))
            else:
                if pruned:
                    reporter(events.WorktreesPruned(tuple(str(path) for path in pruned)))
        try:
            outcome = loop(config)
        except ApiError:
            # A request cut short by the stop (the server was away): stopped all the same.
            if caught:
                return Outcome(STOPPED), EXIT_SIGNAL[caught[0]]
            raise
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
    if (line := cost_line(session)) is not None:
        _say(line)
    if session.state.get("pull_request_url"):
        _say(f"Pull request: {session.state['pull_request_url']}")


def cost_line(session: Session) -> str | None:
    """``Run cost: $1.24 of a $5.00 budget``: what the session's run (a context and its
    children; a component session alone) cost, when the server says."""
    spent = session.run_cost_usd if session.is_context else session.cost_usd
    if spent is None:
        return None
    subject = "Run cost" if session.is_context else "Cost"
    limit = session.max_cost_usd
    budget = f" of a ${dollars(limit)} budget" if limit is not None else ""
    return f"{subject}: ${dollars(spent)}{budget}"


def _start_context_session(args: argparse.Namespace, api: Api) -> str:
    """``run --project P --context M``: a new context testing session of the component whose
    module name is M, so that a codebase goes from ``import`` to a run in two commands."""
    if args.session_id is not None:
        if args.project or args.context:
            raise UsageError("give a session id, or --project and --context, not both")
        return resolve_session_id(api, args.session_id)
    if not (args.project and args.context):
        raise UsageError("give a session id, or --project and --context")
    component = next(
        (c for c in api.components(args.project) if c.get("module_name") == args.context), None
    )
    if component is None:
        raise UsageError(f"project {args.project} has no component {args.context!r}")
    # A session of a component without children would only fail its spawn step: nothing is
    # created for it.
    # A nested context under it (a subpackage's) is a run of its own, not one of its children.
    children = [
        child
        for child in api.components(args.project, parent_component=str(component["id"]))
        if child.get("type") != CONTEXT
    ]
    if not children:
        raise CannotStart(NOT_A_CONTEXT.format(module=args.context))
    if all(child.get("excluded") is True for child in children):
        raise CannotStart(ALL_EXCLUDED.format(module=args.context))
    session = api.create_context_session(args.project, str(component["id"]), agent="claude_code")
    _say(f"Started session {session.id} for {args.context}")
    return session.id


def cmd_run(args: argparse.Namespace, api: Api) -> int:
    # Before a session is created for a run that could not start.
    _worktrees(args, _repo(args))
    args.session_id = _start_context_session(args, api)
    outcome, signalled = _drive(
        args, api, lambda config: run_session(config, args.session_id, jobs=args.jobs)
    )
    if signalled is not None:
        return signalled
    if outcome.status == "complete":
        _say(f"Session {args.session_id} is complete")
        return EXIT_OK
    if outcome.status in (CANNOT_CONTINUE, BUDGET):
        _say(f"Session {args.session_id} cannot go on: {outcome.message}", error=True)
    else:
        reason = f": {outcome.message}" if outcome.message else ""
        _say(f"Session {args.session_id} is {outcome.status}{reason}", error=True)
    return EXIT_FAILED


def cmd_work(args: argparse.Namespace, api: Api) -> int:
    args.session_id = resolve_session_id(api, args.session_id)
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
    elif outcome.status == WORK_BUDGET:
        _say(f"Session {args.session_id} cannot go on: {outcome.message}", error=True)
        return EXIT_FAILED
    else:
        _say(f"Session {args.session_id} is {outcome.status}")
    return EXIT_OK


def _say(line: str, *, error: bool = False) -> None:
    """One line, unwrapped (a log keeps it whole), made safe for a terminal: a newline in a
    value it carries is escaped, so no value prints a line of its own."""
    stream = sys.stderr if error else sys.stdout
    stream.write(one_line(line) + "\n")
    stream.flush()


def _say_lines(text: str, *, error: bool = False) -> None:
    """Text of several lines written here (the importer's), each said as one."""
    for line in str(text).split("\n"):
        _say(line, error=error)


def children_counts(summary: Mapping[str, Any]) -> str:
    """The children summary's counts as a line: ``6 total, 4 complete, 1 failed, ...``
    (numbers only; the summary's other entries have lines of their own)."""
    return ", ".join(
        f"{count} {name}"
        for name, count in summary.items()
        if isinstance(count, int) and not isinstance(count, bool)
    )


def cmd_status(args: argparse.Namespace, api: Api) -> int:
    session = api.get_session(resolve_session_id(api, args.session_id))
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
    # Every value is the server's: a Text, as rich reads markup in a str; one line, as a
    # value must not print a line of its own.
    facts.add_row("session", Text(one_line(f"{session.id} ({session.type})")))
    if session.component:
        facts.add_row("component", Text(one_line(f"{session.name} ({session.module_name})")))
    facts.add_row("status", Text(one_line(f"{session.status}, attempt {session.attempt}")))
    if session.runner:
        facts.add_row("leased", Text(one_line(f"by {session.runner} until {session.leased_until}")))
    if session.state.get("error"):
        facts.add_row("reason", Text(one_line(session.state["error"])))
    if (line := cost_line(session)) is not None:
        facts.add_row("cost", Text(one_line(line.split(": ", 1)[1])))
    if session.state.get("pull_request_url"):
        facts.add_row("pull request", Text(one_line(str(session.state["pull_request_url"]))))
    if children is not None:
        facts.add_row("children", Text(one_line(children_counts(children.summary))))
        coverage = children.summary.get("coverage")
        if isinstance(coverage, dict) and coverage.get("lines_total"):
            facts.add_row(
                "coverage",
                Text(
                    one_line(
                        f"{coverage.get('line_coverage')}% of lines "
                        f"({coverage.get('lines_covered')} of {coverage.get('lines_total')})"
                    )
                ),
            )
        mutation = children.summary.get("mutation")
        if isinstance(mutation, dict) and mutation.get("mutation_score") is not None:
            caught, survived = mutation.get("caught"), mutation.get("survived")
            judged = (
                caught + survived if isinstance(caught, int) and isinstance(survived, int) else "?"
            )
            facts.add_row(
                "mutation",
                Text(
                    one_line(
                        f"{mutation['mutation_score']}% of mutants caught ({caught} of {judged})"
                    )
                ),
            )
    console.print(facts)
    if children is not None and children.results:
        console.print(summary_table(children.results))
    return EXIT_OK


def cmd_report(args: argparse.Namespace, api: Api) -> int:
    session_id = resolve_session_id(api, args.session_id)
    if args.format == "json":
        sys.stdout.write(json.dumps(api.report(session_id), indent=2) + "\n")
    else:
        # The server's Markdown escapes every value it carries; no control character from a
        # name reaches the terminal either way.
        text = api.report_markdown(session_id)
        sys.stdout.write("\n".join(printable(line) for line in text.split("\n")))
        if not text.endswith("\n"):
            sys.stdout.write("\n")
    return EXIT_OK


def cmd_import(args: argparse.Namespace, api: Api) -> int:
    """``spawnctl.importer`` reads the rows; this door gives it the one call it makes to the
    server, which checks them (a dry run included)."""
    from spawnctl import importer, tree_scan

    if not args.repo.is_dir():
        raise UsageError(f"--repo {args.repo} is not a directory")
    if args.include and args.manifest is not None:
        raise UsageError("--include keeps what a scan leaves out; a manifest's rows are all kept")
    if args.override is not None and args.manifest is not None:
        raise UsageError("--override changes a scan's rows; write the change in the manifest")
    language = args.language
    if language == "auto":
        language = tree_scan.detect_language(args.repo)
    try:
        scan = importer.collect_rows(
            repo=args.repo,
            manifest=args.manifest,
            exclude=args.exclude,
            include=args.include,
            language=language,
            override=args.override,
        )
    except (importer.ManifestError, tree_scan.ScanError) as error:
        _say_lines(error.message, error=True)
        return EXIT_FAILED
    for warning in scan.warnings:
        _say(f"warning: {warning}", error=True)
    if args.conventions and (refused := _apply_conventions(args, api, language)) is not None:
        return refused

    # The importer writes lines of its own (a plan is a table) around the server's values:
    # those are made one line each before it sees them, so its lines are the only ones.
    def post_bulk(rows: list[dict], prune: bool, dry_run: bool) -> dict:
        try:
            answer = api.bulk_components(args.project, rows, prune=prune, dry_run=dry_run)
        except ApiError as error:
            if error.status in (400, 409):
                raise importer.ImportRejected(error.status, _one_line_values(error.body)) from None
            raise
        return _one_line_values(answer)

    return importer.run_import(
        rows=scan.rows,
        post_bulk=post_bulk,
        dry_run=args.dry_run,
        prune=args.prune,
        out=_say_lines,
    )


def _apply_conventions(args: argparse.Namespace, api: Api, language: str) -> int | None:
    """The language's conventions set on the project (said, not set, in a dry run); the exit
    code when the server refuses them, else None."""
    from spawnctl import conventions

    found = conventions.for_language(language, args.repo)
    verb = "Would set" if args.dry_run else "Set"
    if not args.dry_run:
        try:
            api.update_project(args.project, found.settings)
        except ApiError as error:
            if error.status != 400:
                raise
            _say(f"The project's settings were refused for {language}'s conventions:", error=True)
            for name, reasons in _one_line_values(error.body or {}).items():
                reasons = reasons if isinstance(reasons, list) else [reasons]
                _say(f"  {name}: {' '.join(str(r) for r in reasons)}", error=True)
            return EXIT_FAILED
    _say(f"{verb} the project's settings to {language}'s conventions:")
    for name, value in found.settings.items():
        _say(f"  {name} = {'null' if value is None else value}")
    for note in found.notes:
        _say(f"  note: {note}")
    return None


def _one_line_values(value: Any) -> Any:
    """``value`` (a JSON answer) with every string in it, keys too, made one line."""
    if isinstance(value, str):
        return one_line(value)
    if isinstance(value, dict):
        return {_one_line_values(k): _one_line_values(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_one_line_values(item) for item in value]
    return value


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
