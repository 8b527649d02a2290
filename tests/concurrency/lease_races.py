"""Races over a context's children: claims, the child cap, spawning what is missing, and a
spawn or a retry meeting the parent's cancel.

The same harness as ``races.py`` (real threads, each with its own connection, released
together by a barrier); the PostgreSQL tests (``test_postgres_lease_races.py``) and the
SQLite-file runner (``sqlite_file_races.py``) run these scenarios.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.utils import timezone

from components_app.models import Component
from core.errors import Conflict
from core.scope import Scope
from sessions_app import selectors, services
from sessions_app.models import (
    ChildOrder,
    DailyCost,
    FinishedCount,
    Interaction,
    Session,
    SessionStatus,
)
from sessions_app.workflows.steps.spawn_component_testing_sessions import CANNOT_SPAWN
from sessions_app.workflows.types import Result
from tests.concurrency.races import (
    COMPONENTS,
    SPAWN_ORDER,
    errors_of,
    fresh_context_session,
    run_together,
    spawned_children,
)
from tests.factories import (
    make_component,
    make_context,
    make_context_session,
    make_project,
    make_user,
)

CLAIMERS = 16
# Twice the cap: enough claimers to be refused while it is full, few enough that on SQLite,
# where every claim (refused or not) takes the one write lock, the refusals do not crowd out
# the releases.
CAPPED_CLAIMERS = 10
CHILDREN = 40
CAP = 5
CAPPED_CHILDREN = 20
# Claimers give up (and fail the scenario) if the children are not all finished by then.
FINISH_WITHIN_S = 60
# How long a claimer keeps a child before it releases or completes it, once the cap has been
# full (or SATURATE_WITHIN_S has passed: the scenario then fails on the cap never reached).
HOLD_S = (0.02, 0.08)
SATURATE_WITHIN_S = 10
RETRIED_AND_REFUSED = {
    services.PARENT_FINISHED.format(status=SessionStatus.CANCELLED),
    services.RETRY_ONLY_FINISHED.format(status=SessionStatus.ACTIVE),
    services.CHILDREN_CANNOT_BE_RETRIED.format(status=SessionStatus.CANCELLED),
}


def context_with_children(
    count: int, *, max_parallel_children: int | None = None
) -> tuple[Scope, Session, list[Session]]:
    """A context session with ``count`` spawned children, all active; the children in spawn
    order."""
    user = make_user()
    project = make_project(user)
    scope = Scope(user=user, project=project)
    context = make_context(project, [(f"Part{index:02}", 0) for index in range(count)])
    session = make_context_session(scope, context, max_parallel_children=max_parallel_children)
    services.spawn_child_sessions(scope=scope, session_id=session.pk)
    children = spawned_children(session)
    assert len(children) == count
    return scope, session, children


def lease_to(children: list[Session], runner: str, *, seconds: int) -> None:
    """Give ``children`` a lease as if ``runner`` had claimed them; a negative ``seconds``
    leaves an expired lease, as a runner that stopped renewing does."""
    Session.objects.filter(pk__in=[child.pk for child in children]).update(
        runner=runner, leased_until=timezone.now() + timedelta(seconds=seconds)
    )


def leases(children: list[Session]) -> dict[str, tuple[str | None, object]]:
    rows = Session.objects.filter(pk__in=[child.pk for child in children])
    return {
        str(pk): (runner, until)
        for pk, runner, until in rows.values_list("pk", "runner", "leased_until")
    }


# --- Claims without a cap -------------------------------------------------------------------


def claim_until_none(scope: Scope, session: Session) -> list[tuple[str, str, str]]:
    """Every claimer takes children until it is told none is left; what each claim handed out:
    (child id, the lease's runner, the interaction's step)."""

    def claimer(index: int) -> list[tuple[str, str, str]]:
        runner = f"runner-{index}"
        handed = []
        while claim := services.claim_child(scope=scope, session_id=session.pk, runner=runner):
            child, interaction = claim
            assert interaction.session_id == child.pk
            handed.append((str(child.pk), child.runner, interaction.step_name))
            # A runner starts the child's work before it claims again; on SQLite, whose
            # waiting writers poll, this gap lets the other claimers in.
            time.sleep(0.002)
        return handed

    outcomes = run_together(CLAIMERS, claimer)
    assert errors_of(outcomes) == []
    return [claim for outcome in outcomes for claim in outcome.value]


def claims_race(*, stalled: int = 0, busy: int = 0) -> None:
    """Claimers of one context never get the same child: each claimable child is handed out
    exactly once, to one runner, whose lease the database shows. ``stalled`` children start
    with an expired lease (claimable); ``busy`` ones with another runner's live lease (not)."""
    scope, session, children = context_with_children(CHILDREN)
    lease_to(children[:stalled], "gone", seconds=-60)
    lease_to(children[stalled : stalled + busy], "busy", seconds=600)
    untouched = leases(children[stalled : stalled + busy])
    claimable = children[:stalled] + children[stalled + busy :]

    handed = claim_until_none(scope, session)

    counts = Counter(child_id for child_id, _, _ in handed)
    assert [child_id for child_id, n in counts.items() if n > 1] == []
    assert set(counts) == {str(child.pk) for child in claimable}
    assert {step for _, _, step in handed} == {"Initialize"}
    now = timezone.now()
    in_db = leases(claimable)
    for child_id, runner, _ in handed:
        assert in_db[child_id][0] == runner
        assert in_db[child_id][1] > now
    assert leases(children[stalled : stalled + busy]) == untouched
    pending = Interaction.objects.filter(session__parent_session=session, completed_at=None)
    assert sorted(str(pk) for pk in pending.values_list("session_id", flat=True)) == sorted(counts)


def claims_race_plain() -> None:
    claims_race()


def claims_race_with_stalled_and_busy_children() -> None:
    claims_race(stalled=10, busy=4)


# --- Claims under max_parallel_children -------------------------------------------------------


@dataclass
class Holds:
    """The claimers' own bookkeeping of the children they hold. A child enters after its
    claim committed and leaves before its release or completion starts, so what is held here
    is always a subset of the live leases in the database: more than the cap here is a
    breach there, and reaching it here means the database reached it too."""

    allowed: int
    to_finish: int
    lock: threading.Lock = field(default_factory=threading.Lock)
    held: set[str] = field(default_factory=set)
    most_held: int = 0
    finished: int = 0
    claims: int = 0
    breaches: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    # Set once the claimers hold all the cap allows; until then they keep what they claimed,
    # so the cap is full while the other claimers keep asking.
    saturated: threading.Event = field(default_factory=threading.Event)

    def done(self) -> bool:
        with self.lock:
            return self.finished == self.to_finish

    def keep_going(self, deadline: float) -> None:
        if self.stop.is_set():
            raise RuntimeError("stopped: another client failed")
        if time.monotonic() > deadline:
            raise AssertionError(f"children not finished within {FINISH_WITHIN_S}s")

    def took(self, child_id: str) -> None:
        with self.lock:
            self.claims += 1
            if child_id in self.held:
                self.breaches.append(f"{child_id} handed out while held")
            self.held.add(child_id)
            if len(self.held) > self.allowed:
                self.breaches.append(f"{len(self.held)} children held, cap allows {self.allowed}")
            self.most_held = max(self.most_held, len(self.held))
            if len(self.held) >= self.allowed:
                self.saturated.set()


def capped_claims_race(*, stalled: int = 0, busy: int = 0) -> None:
    """With ``max_parallel_children`` = 5, claimers claim, hold a moment, then release (the
    child goes back to the pool) or complete the child, until every claimable child is
    complete. Neither the claimers' bookkeeping nor a watcher reading the database ever sees
    more live leases than the cap allows, and the cap is reached. ``busy`` children hold
    another runner's live lease throughout and use up part of the cap; ``stalled`` ones
    start with an expired lease, which uses up none."""
    scope, session, children = context_with_children(CAPPED_CHILDREN, max_parallel_children=CAP)
    lease_to(children[:stalled], "gone", seconds=-60)
    lease_to(children[stalled : stalled + busy], "busy", seconds=600)
    untouched = leases(children[stalled : stalled + busy])
    claimable = children[:stalled] + children[stalled + busy :]
    holds = Holds(allowed=CAP - busy, to_finish=len(claimable))
    active_children = Session.objects.filter(
        parent_session_id=session.pk, status=SessionStatus.ACTIVE
    )
    watched: list[int] = []
    deadline = time.monotonic() + FINISH_WITHIN_S

    def watcher() -> None:
        while not holds.done():
            holds.keep_going(deadline)
            watched.append(active_children.filter(leased_until__gt=timezone.now()).count())
            time.sleep(0.005)

    def claimer(index: int) -> None:
        runner = f"runner-{index}"
        rng = random.Random(index)
        while not holds.done():
            holds.keep_going(deadline)
            claim = services.claim_child(scope=scope, session_id=session.pk, runner=runner)
            if claim is None:
                # A runner told "nothing now" waits before asking again; asking at once would
                # keep SQLite's single write lock from the releases the claimers wait for.
                time.sleep(rng.uniform(0.05, 0.1))
                continue
            child_id = str(claim[0].pk)
            holds.took(child_id)
            holds.saturated.wait(timeout=SATURATE_WITHIN_S)
            time.sleep(rng.uniform(*HOLD_S))
            with holds.lock:
                holds.held.discard(child_id)
            if rng.random() < 0.5:
                services.release(scope=scope, session_id=child_id, runner=runner)
                continue
            services.update_session(scope=scope, session_id=child_id, status=SessionStatus.COMPLETE)
            with holds.lock:
                holds.finished += 1

    def client(index: int) -> None:
        try:
            watcher() if index == 0 else claimer(index)
        except BaseException:
            holds.stop.set()
            raise

    outcomes = run_together(CAPPED_CLAIMERS + 1, client)

    assert errors_of(outcomes) == []
    assert holds.breaches == []
    assert watched and [count for count in watched if count > CAP] == []
    # The cap was really in play: at some moment all it allows was leased.
    assert holds.most_held == holds.allowed
    assert holds.claims >= len(claimable)
    statuses = Counter(
        Session.objects.filter(pk__in=[c.pk for c in claimable]).values_list("status", flat=True)
    )
    assert statuses == {SessionStatus.COMPLETE: len(claimable)}
    assert set(leases(claimable).values()) == {(None, None)}
    assert leases(children[stalled : stalled + busy]) == untouched
    assert_finished_counts_match_the_sessions(session.project_id, finished=len(claimable))


def capped_claims_race_plain() -> None:
    capped_claims_race()


def capped_claims_race_with_stalled_and_busy_children() -> None:
    capped_claims_race(stalled=4, busy=2)


# --- Spawning what is missing -------------------------------------------------------------


def spawn_missing_race(clients: int = 8) -> None:
    """Simultaneous spawn-missing calls on a context where some components have no child
    (two added after the spawn, two whose children are gone): each of those gets exactly
    one child, one caller created them all, and every answer lists the same children."""
    scope, session = fresh_context_session()
    services.spawn_child_sessions(scope=scope, session_id=session.pk)
    context = session.component
    for name, priority in [("Cache", 4), ("Admin", 11)]:
        make_component(scope.project, name, priority=priority, parent_component=context)
    Session.objects.filter(parent_session=session, component__name__in=["Token", "Audit"]).delete()
    before = {str(child.pk) for child in spawned_children(session)}

    outcomes = run_together(
        clients,
        lambda _: services.spawn_missing_child_sessions(scope=scope, session_id=session.pk),
    )

    assert errors_of(outcomes) == []
    children = spawned_children(session)
    order = ["Admin", *SPAWN_ORDER[:3], "Cache", *SPAWN_ORDER[3:]]
    assert [child.component.name for child in children] == order
    expected = [str(child.pk) for child in children]
    answers = [outcome.value.metadata for outcome in outcomes]
    assert [answer["child_session_ids"] for answer in answers] == [expected] * clients
    assert [answer["failed_components"] for answer in answers] == [[]] * clients
    created = [answer["created_session_ids"] for answer in answers if answer["created_session_ids"]]
    assert created == [[child_id for child_id in expected if child_id not in before]]
    assert len(created[0]) == 4


# --- A spawn or a retry meeting the parent's cancel -------------------------------------------


def assert_no_active_child(session: Session) -> dict[str, int]:
    session.refresh_from_db()
    assert session.status == SessionStatus.CANCELLED
    statuses = Counter(child.status for child in spawned_children(session))
    assert SessionStatus.ACTIVE not in statuses, statuses
    return statuses


def spawn_cancel_race() -> None:
    """A spawn and the parent's cancel sent together: the cancel wins and the spawn is
    refused with the exact text, leaving no child; or the spawn wins and the cancel cancels
    every child it made. Never a cancelled parent with an active child."""
    scope, session = fresh_context_session()
    calls = [
        lambda: services.spawn_child_sessions(scope=scope, session_id=session.pk),
        lambda: services.cancel_session(scope=scope, session_id=session.pk),
    ]

    spawned, cancelled = run_together(2, lambda index: calls[index]())

    assert cancelled.error is None, cancelled.error
    statuses = assert_no_active_child(session)
    if spawned.error is None:
        assert statuses == {SessionStatus.CANCELLED: len(COMPONENTS)}
    else:
        assert isinstance(spawned.error, Conflict), repr(spawned.error)
        assert spawned.error.message == CANNOT_SPAWN.format(status=SessionStatus.CANCELLED)
        assert statuses == {}


def spawn_missing_cancel_race() -> None:
    """The same for spawn-missing on a parent that already has children: the children it
    creates, if it wins, are cancelled with the rest."""
    scope, session = fresh_context_session()
    services.spawn_child_sessions(scope=scope, session_id=session.pk)
    Session.objects.filter(parent_session=session, component__name="User").delete()
    calls = [
        lambda: services.spawn_missing_child_sessions(scope=scope, session_id=session.pk),
        lambda: services.cancel_session(scope=scope, session_id=session.pk),
    ]

    spawned, cancelled = run_together(2, lambda index: calls[index]())

    assert cancelled.error is None, cancelled.error
    statuses = assert_no_active_child(session)
    if spawned.error is None:
        assert statuses == {SessionStatus.CANCELLED: len(COMPONENTS)}
    else:
        assert isinstance(spawned.error, Conflict), repr(spawned.error)
        assert spawned.error.message == CANNOT_SPAWN.format(status=SessionStatus.CANCELLED)
        assert statuses == {SessionStatus.CANCELLED: len(COMPONENTS) - 1}


def retry_cancel_race() -> None:
    """Retries of a context's failed and cancelled children (one by one and all at once) sent
    together with the parent's cancel: afterwards no child is active, each retry either
    applied or was refused with one of the exact texts, and each child's attempt counts the
    retries that applied to it."""
    scope, session = fresh_context_session(COMPONENTS[:4])
    services.spawn_child_sessions(scope=scope, session_id=session.pk)
    children = spawned_children(session)
    failed, cancelled, other_failed, running = children
    Session.objects.filter(pk__in=[failed.pk, other_failed.pk]).update(
        status=SessionStatus.FAILED, state={"error": "tests failed"}
    )
    Session.objects.filter(pk=cancelled.pk).update(status=SessionStatus.CANCELLED)
    lease_to([running], "runner-0", seconds=600)
    calls = [
        lambda: services.cancel_session(scope=scope, session_id=session.pk),
        lambda: [services.retry_session(scope=scope, session_id=failed.pk)],
        lambda: [services.retry_session(scope=scope, session_id=cancelled.pk)],
        lambda: services.retry_child_sessions(scope=scope, session_id=session.pk),
    ]

    outcomes = run_together(len(calls), lambda index: calls[index]())

    assert outcomes[0].error is None, outcomes[0].error
    retries = outcomes[1:]
    refused = [outcome.error for outcome in retries if outcome.error is not None]
    assert all(isinstance(error, Conflict) for error in refused), [repr(e) for e in refused]
    assert {error.message for error in refused} <= RETRIED_AND_REFUSED
    assert_no_active_child(session)
    assert leases([running]) == {str(running.pk): (None, None)}
    applied = Counter(
        str(child.pk) for outcome in retries if outcome.error is None for child in outcome.value
    )
    for child in spawned_children(session):
        retried = applied[str(child.pk)]
        assert child.attempt == 1 + retried, child
        # A retried child was active again when the cancel reached it; a failed child that
        # no retry reached stays failed.
        was_failed = child.pk in (failed.pk, other_failed.pk)
        expected = SessionStatus.FAILED if was_failed and not retried else SessionStatus.CANCELLED
        assert child.status == expected, child
        if retried:
            assert child.state["previous_errors"] == (["tests failed"] if was_failed else [])
    assert_totals_match_the_steps(spawned_children(session))
    still_failed = [c for c in spawned_children(session) if c.status == SessionStatus.FAILED]
    assert_finished_counts_match_the_sessions(session.project_id, finished=len(still_failed))


# --- A run's budget ------------------------------------------------------------------------

BUDGET_CHILDREN = 12
BUDGET_RUNNERS = 6
BUDGET = Decimal("1.00")
STEP_COST = Decimal("0.15")


def assert_finished_counts_match_the_sessions(project_id: Any, *, finished: int) -> None:
    """The dashboard's counts of finished sessions, as the session table's triggers kept them
    through the race, are what the sessions themselves count to (``finished`` of them)."""

    def kept() -> dict[tuple[Any, ...], int]:
        rows = FinishedCount.objects.filter(project_id=project_id, count__gt=0)
        return {(r.quarter, r.status, r.is_run, r.is_component): r.count for r in rows}

    before = kept()
    assert sum(before.values()) == finished, before
    services.recount_finished([project_id])
    assert kept() == before


def assert_totals_match_the_steps(sessions: list[Session]) -> None:
    """Each session's own usage totals, as results kept them, are what its steps sum to."""
    kept = {s.pk: tuple(getattr(s, name) for name in services.OWN_USAGE_FIELDS) for s in sessions}
    services.recount_from_steps(Session.objects.filter(pk__in=kept))
    for recounted in Session.objects.filter(pk__in=kept):
        assert kept[recounted.pk] == tuple(
            getattr(recounted, name) for name in services.OWN_USAGE_FIELDS
        ), recounted


def budget_race() -> None:
    """Runners claim a context's children and drive them, each agent step costing 0.15 of a
    1.00 budget, until none can be claimed. No agent step is handed out once what the run's
    steps cost, as committed before it was handed out, reached the budget; the spend stops
    within one step per runner of it; the children the budget stopped stay active."""
    from sessions_app import usage

    scope, session, _ = context_with_children(BUDGET_CHILDREN)
    Session.objects.filter(pk=session.pk).update(max_cost_usd=BUDGET)

    def runner(index: int) -> int:
        name = f"runner-{index}"
        refused = 0  # agent steps next-command refused
        while claim := services.claim_child(scope=scope, session_id=session.pk, runner=name):
            child, interaction = claim
            failed_once = False
            while True:
                cost = STEP_COST if interaction.step_name in usage.AGENT_STEPS else None
                data = {"usage": {"cost_usd": float(cost)}} if cost else None
                # Each child's first test run fails: its fix is an agent step handed out by
                # next-command, not by a claim.
                fails = interaction.step_name == "RunTests" and not failed_once
                failed_once = failed_once or fails
                _, child = services.submit_result(
                    scope=scope,
                    session_id=child.pk,
                    interaction_id=interaction.pk,
                    result=Result(
                        status="error" if fails else "ok", code=1 if fails else 0, data=data
                    ),
                )
                if child.is_finished:
                    break
                try:
                    interaction, _ = services.next_command(
                        scope=scope, session_id=child.pk, runner=name
                    )
                except Conflict as error:
                    assert error.message.startswith("Run budget spent: $"), error.message
                    refused += 1
                    services.release(scope=scope, session_id=child.pk, runner=name)
                    break
        return refused

    outcomes = run_together(BUDGET_RUNNERS, runner)
    assert errors_of(outcomes) == []
    steps = list(
        Interaction.objects.filter(session__parent_session=session).values_list(
            "step_name", "created_at", "completed_at", "cost_usd"
        )
    )
    spent = sum((cost for *_, cost in steps if cost is not None), Decimal(0))
    assert spent >= BUDGET
    assert spent < BUDGET + BUDGET_RUNNERS * STEP_COST
    for name, created, _, _ in steps:
        if name not in usage.AGENT_STEPS:
            continue
        before = sum(
            (cost for _, _, done, cost in steps if cost is not None and done and done < created),
            Decimal(0),
        )
        assert before < BUDGET, (name, created, before)
    left = Session.objects.filter(parent_session=session, status=SessionStatus.ACTIVE)
    assert left.exists() and not left.filter(runner__isnull=False).exists()
    # The totals each result added under its row lock are what the steps sum to: none lost
    # or added twice however the runners' results interleaved.
    assert selectors.run_cost(session) == spent
    assert_totals_match_the_steps(spawned_children(session))
    # The project's cost of the day: the runners' first results raced to create its row.
    assert DailyCost.objects.get(project_id=session.project_id).cost_usd == spent
    # Nothing more is handed out, by claim or by next-command.
    assert services.claim_child(scope=scope, session_id=session.pk, runner="late") is None


# --- The kept order of a context's children against changes to it ---------------------------


def assert_kept_order_is_live(session: Session) -> None:
    """The order kept for the session's children, if any, is their spawn order now; and the
    session's JSON lists them so."""
    live = [str(child.pk) for child in spawned_children(session)]
    kept = ChildOrder.objects.filter(parent_id=session.pk).values_list("ids", flat=True).first()
    assert kept is None or kept.split(",") == live
    rendered = selectors.with_child_ids(Session.objects.filter(pk=session.pk)).get()
    assert selectors.child_ids_in_spawn_order(rendered) == live


def child_order_race(clients: int = 4, rounds: int = 8) -> None:
    """A keeper of a context's children's order (under the parent's row lock, as the spawn
    step and the result check keep it, with a pause between reading the order and writing
    it) meets clients that change its components' priorities and names meanwhile: whatever
    the interleaving, what is kept afterwards is the live order, or nothing. (One keeper a
    round: a second, later one would read the changes and hide a stale write.)"""
    scope, session = fresh_context_session()
    services.spawn_child_sessions(scope=scope, session_id=session.pk)
    components = [child.component for child in spawned_children(session)]
    assert ChildOrder.objects.filter(parent_id=session.pk).exists()

    def client(index: int) -> None:
        if index == 0:
            with transaction.atomic():
                parent = selectors.get_session(scope=scope, session_id=session.pk, lock=True)
                ids = [str(child.pk) for child in spawned_children(parent)]
                time.sleep(0.05)
                selectors.keep_child_order(parent, ids)
            return
        time.sleep(random.uniform(0.005, 0.03))
        component = random.choice(components)
        if index % 2:
            Component.objects.filter(pk=component.pk).update(priority=random.randint(-5, 20))
        else:
            component.name = f"{component.name[:1]}{random.randint(0, 999):03d}"
            component.save(update_fields=["name"])

    for _ in range(rounds):
        outcomes = run_together(clients, client)
        assert errors_of(outcomes) == []
        assert_kept_order_is_live(session)


SCENARIOS = [
    claims_race_plain,
    claims_race_with_stalled_and_busy_children,
    capped_claims_race_plain,
    capped_claims_race_with_stalled_and_busy_children,
    spawn_missing_race,
    spawn_cancel_race,
    spawn_missing_cancel_race,
    retry_cancel_race,
    budget_race,
    child_order_race,
]
