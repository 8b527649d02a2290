"""Events turned into output: a live view on a terminal (one line per running child, an
overall bar), one plain line per event otherwise; and the summary table at the end.

Every value shown passes through ``one_line``: names, reasons and errors come from the server
(or from a client that wrote them there), and one holding a newline would otherwise print a
line this runner never wrote."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import IO

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn
from rich.table import Table
from rich.text import Text

from spawnctl import events
from spawnctl.api import Session, dollars
from spawnctl.text import one_line


def describe(event: events.Event) -> str | None:
    """The line an event is logged as (None: nothing worth a line)."""
    match event:
        case events.Spawned(children=children):
            names = ", ".join(children)
            return f"{len(children)} child session(s): {names}"
        case events.StepStarted(name=name, step=step):
            return f"{name}: {step} started"
        case events.StepEnded(name=name, step=step, status=status) as ended:
            facts = []
            # An error the server judged (VerifyTests below the bar) after a command that
            # exited 0 is no "exit 0" error: the code is shown when it says something.
            if ended.code is not None and not (status == "error" and ended.code == 0):
                facts.append(f"exit {ended.code}")
            if ended.duration_ms:
                facts.append(f"{ended.duration_ms / 1000:.1f} s")
            line = f"{name}: {step} {status}" + (f" ({', '.join(facts)})" if facts else "")
            return line + (f": {ended.error_message}" if ended.error_message else "")
        case events.Retrying(name=name, step=step, seconds=seconds):
            return f"{name}: {step} failed; trying again in {seconds:g} s"
        case events.SessionEnded(name=name, status=status, reason=reason, attempt=attempt):
            line = f"{name}: session {status} (attempt {attempt})"
            return line + (f": {reason}" if reason else "")
        case events.Released(name=name, why=why):
            return f"{name}: released unfinished ({why})"
        case events.WorktreeSetUp(name=name, ok=ok, duration_ms=duration_ms):
            return f"{name}: worktree setup {'ok' if ok else 'failed'} ({duration_ms / 1000:.1f} s)"
        case events.WorktreeKept(name=name, path=path):
            return f"{name}: worktree kept at {path}"
        case events.WorktreesPruned(paths=paths):
            return f"Removed {len(paths)} worktree(s) left by a runner that stopped: " + ", ".join(
                paths
            )
        case events.LeaseHeld(name=name, runner=runner, until=until):
            return f"{name}: leased by {runner} until {until}; waiting to take it over"
        case events.Waiting(message=message) | events.CannotContinue(message=message):
            return message
        case events.Notice(message=message):
            return f"warning: {message}"
    return None


@dataclass
class _Running:
    name: str
    step: str
    started: float


class _Tally:
    """What the views show, updated from events under the reporter's lock. The counts are
    the server's (its children summary), never this process's own: other runners finish
    children too, and a child cancelled elsewhere ends no job here."""

    def __init__(self) -> None:
        self.total = 0
        self.complete = 0
        self.failed = 0
        self.cancelled = 0
        self.running: dict[str, _Running] = {}

    def apply(self, event: events.Event) -> None:
        match event:
            case events.ChildrenCounted() as counted:
                self.total, self.complete = counted.total, counted.complete
                self.failed, self.cancelled = counted.failed, counted.cancelled
            case events.StepStarted() as started:
                self.running[started.session_id] = _Running(
                    started.name, started.step, time.monotonic()
                )
            case events.StepEnded(is_child=False) as ended:
                # The context's line shows while its step runs; a child's stays to its end.
                self.running.pop(ended.session_id, None)
            case events.SessionEnded() as ended:
                self.running.pop(ended.session_id, None)
            case events.Released() as released:
                self.running.pop(released.session_id, None)


class PlainReporter:
    """One line per event, for logs and pipes."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream
        self._lock = threading.Lock()

    def __call__(self, event: events.Event) -> None:
        line = describe(event)
        if line is None:
            return
        with self._lock:
            stamp = datetime.now().strftime("%H:%M:%S")
            self.stream.write(f"{stamp} {one_line(line)}\n")
            self.stream.flush()

    def close(self) -> None:
        pass

    def summary(self, children: Iterable[Session]) -> None:
        with self._lock:
            for child in children:
                reason = f": {child.failure_reason}" if child.failure_reason else ""
                cost = f", ${dollars(child.cost_usd)}" if child.cost_usd is not None else ""
                self.stream.write(
                    one_line(f"{child.name}: {child.status}, attempt {child.attempt}{cost}{reason}")
                    + "\n"
                )
            self.stream.flush()


# Events printed above the live view on a terminal; the view itself shows the rest.
_LOGGED_ON_TERMINAL = (
    events.Spawned,
    events.Retrying,
    events.SessionEnded,
    events.Released,
    events.WorktreeSetUp,
    events.WorktreeKept,
    events.WorktreesPruned,
    events.LeaseHeld,
    events.Waiting,
    events.CannotContinue,
    events.Notice,
)


class LiveReporter:
    """rich's ``Live``: the running children (component, step, elapsed) under an overall bar
    (n/N complete, failed, cancelled), with the events that matter printed above it."""

    def __init__(self, console: Console, *, refresh_per_second: float = 4) -> None:
        self.console = console
        self.tally = _Tally()
        self._lock = threading.Lock()
        self._bar = Progress(
            TextColumn("children"),
            BarColumn(),
            TaskProgressColumn(),
            TextColumn("{task.fields[counts]}"),
            console=console,
        )
        self._task = self._bar.add_task("children", total=None, counts="")
        self._live = Live(
            self, console=console, refresh_per_second=refresh_per_second, transient=False
        )
        self._started = False

    def __rich__(self) -> RenderableType:
        with self._lock:
            return self.render()

    def render(self) -> RenderableType:
        tally = self.tally
        counts = (
            f"{tally.complete}/{tally.total} complete, {tally.failed} failed, "
            f"{tally.cancelled} cancelled"
        )
        self._bar.update(
            self._task, total=tally.total or None, completed=tally.complete, counts=counts
        )
        rows = Table.grid(padding=(0, 2))
        rows.add_column(style="bold")
        rows.add_column()
        rows.add_column(justify="right")
        now = time.monotonic()
        for running in tally.running.values():
            rows.add_row(
                Text(one_line(running.name)),
                Text(one_line(running.step)),
                f"{now - running.started:.0f}s",
            )
        return Group(rows, self._bar.get_renderable())

    def __call__(self, event: events.Event) -> None:
        with self._lock:
            self.tally.apply(event)
            if not self._started:
                self._live.start()
                self._started = True
        failed_step = isinstance(event, events.StepEnded) and event.status == "error"
        if failed_step or isinstance(event, _LOGGED_ON_TERMINAL):
            line = describe(event)
            if line is not None:
                self._live.console.print(Text(one_line(line)))
        if not self._live.auto_refresh:
            self._live.refresh()

    def close(self) -> None:
        with self._lock:
            started, self._started = self._started, False
        if started:
            self._live.stop()

    def summary(self, children: Iterable[Session]) -> None:
        self.console.print(summary_table(children))


def summary_table(children: Iterable[Session]) -> Table:
    table = Table(title="Child sessions")
    for column in ("component", "status", "attempts", "cost", "reason"):
        table.add_column(column, justify="right" if column == "cost" else "left")
    for child in children:
        table.add_row(
            Text(one_line(child.name)),
            Text(one_line(child.status), style=_STATUS_STYLE.get(child.status, "")),
            str(child.attempt),
            f"${dollars(child.cost_usd)}" if child.cost_usd is not None else "",
            Text(one_line(child.failure_reason or "")),
        )
    return table


_STATUS_STYLE = {"complete": "green", "failed": "red", "cancelled": "yellow", "active": "cyan"}

Reporter = PlainReporter | LiveReporter


def reporter_for(console: Console) -> Reporter:
    """The live view on a terminal, plain lines anywhere else."""
    if console.is_terminal:
        return LiveReporter(console)
    return PlainReporter(console.file)
