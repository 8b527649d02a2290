"""Reads of sessions and interactions. Every function is limited to what its caller may see."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from django.db.models import (
    BigIntegerField,
    Case,
    CharField,
    Count,
    DecimalField,
    Exists,
    ExpressionWrapper,
    F,
    Func,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Sum,
    TextField,
    Value,
    When,
)
from django.db.models.fields.json import KT
from django.db.models.functions import Cast, Coalesce
from django.utils import timezone

from components_app.models import CONTEXT_TYPE, CodePointOrder, Component
from components_app.models import SPAWN_ORDER as COMPONENT_SPAWN_ORDER
from core.errors import InvalidInput
from sessions_app import usage
from sessions_app.models import ChildOrder, Interaction, Session, SessionStatus, stalled_at
from sessions_app.quality_bar import percent
from sessions_app.workflows.session_types import CONTEXT_TESTING_SESSIONS

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser

    from core.scope import Scope

NO_REASON_RECORDED = "no reason recorded"

# Spawn order: the component's priority descending, then its name; creation breaks ties so
# that children whose component was deleted still have a stable place.
SPAWN_ORDER = (
    F("component__priority").desc(nulls_last=True),
    CodePointOrder("component__name").asc(nulls_last=True),
    "created_at",
    "id",
)


def sessions_for_user(user: AbstractBaseUser) -> QuerySet[Session]:
    return Session.objects.filter(project__members=user)


SHORT_ID_LENGTH = 8
MIN_ID_PREFIX = 4
MAX_NAMED_MATCHES = 10
AMBIGUOUS_ID = "Session id {prefix} is ambiguous; it matches {matches}"
_HEX = frozenset("0123456789abcdef")


def short_id(session_id: uuid.UUID) -> str:
    """The first characters of a session's id, as a person sees and types it."""
    return str(session_id)[:SHORT_ID_LENGTH]


def find_session_by_id(
    *, id_or_prefix: str, sessions: QuerySet[Session] | None = None
) -> Session | None:
    """The session a person named by its full id or by a prefix of it (the short id: its
    first 8 characters), among ``sessions`` (default: every session, as an operator's
    command sees them, with its project, owner, component and failure reason).

    None when nothing matches; an ``InvalidInput`` naming the matches when several do.
    """
    if sessions is None:
        sessions = with_failure_reason(
            Session.objects.select_related("project", "user", "component")
        )
    try:
        full_id = uuid.UUID(id_or_prefix.strip())
    except ValueError:
        full_id = None
    if full_id is not None:
        return sessions.filter(pk=full_id).first()
    prefix = id_prefix(id_or_prefix)
    if prefix is None:
        return None
    matches = list(
        sessions.filter(pk__startswith=prefix).order_by("created_at", "id")[: MAX_NAMED_MATCHES + 1]
    )
    if len(matches) <= 1:
        return matches[0] if matches else None
    named = ", ".join(
        f"{match.pk} ({display_name(match)})" for match in matches[:MAX_NAMED_MATCHES]
    )
    if len(matches) > MAX_NAMED_MATCHES:
        named += " and more"
    raise InvalidInput(AMBIGUOUS_ID.format(prefix=prefix, matches=named))


def id_prefix(text: str) -> str | None:
    """``text`` as the start of a UUID's canonical text (hyphens where a UUID has them), or
    None if it cannot be one or is too short to mean one."""
    digits = text.strip().lower().replace("-", "")
    if not MIN_ID_PREFIX <= len(digits) < 32 or not set(digits) <= _HEX:
        return None
    # Hyphens after the 8th, 12th, 16th and 20th digit, so that the prefix compares equal to
    # the uuid column cast to text on PostgreSQL (SQLite's hex column ignores them).
    groups = [digits[:8], digits[8:12], digits[12:16], digits[16:20], digits[20:]]
    return "-".join(group for group in groups if group)


def get_session(
    *, scope: Scope, session_id: uuid.UUID, lock: bool = False, with_kept_order: bool = False
) -> Session | None:
    """The session if it lives in the scope's project. ``lock`` takes its row lock;
    ``with_kept_order`` says whether its children's order is kept (``child_order_kept``).

    The lock must be taken inside a transaction; on SQLite it is a no-op and the
    IMMEDIATE transaction mode serializes writers instead.
    """
    queryset = Session.objects.filter(project_id=scope.project_id, pk=session_id)
    if lock:
        queryset = queryset.select_for_update(of=("self",))
    if with_kept_order:
        queryset = queryset.annotate(
            **{ORDER_KEPT: Exists(ChildOrder.objects.filter(parent_id=OuterRef("pk")))}
        )
    return queryset.select_related("component").first()


# The attribute ``with_child_ids`` leaves each session's children on, in spawn order.
CHILDREN_IN_SPAWN_ORDER = "children_in_spawn_order"
# And the annotation it reads them from where they are kept (``ChildOrder``): text or None.
KEPT_CHILD_IDS = "kept_child_ids"
ORDER_KEPT = "child_order_is_kept"


def with_child_ids(queryset: QuerySet[Session], *, run: bool = True) -> QuerySet[Session]:
    """Sessions ready to render: component and verification joined, their usage (``run``
    False: their own only, for children, whose run is their context's), and their children's
    ids where they are kept. The others' come from ``attach_child_ids`` once they are read
    (a page), else one query each."""
    kept = ChildOrder.objects.filter(parent_id=OuterRef("pk")).values("ids")[:1]
    return with_usage(
        queryset.select_related("component", "latest_verification").annotate(
            **{KEPT_CHILD_IDS: Subquery(kept, output_field=TextField())}
        ),
        run=run,
    )


def _id_text(stored: str) -> str:
    """A session id as its JSON shows it, from the database's text of it: PostgreSQL's is
    that already, SQLite stores 32 hex digits."""
    if len(stored) == 32:
        return f"{stored[:8]}-{stored[8:12]}-{stored[12:16]}-{stored[16:20]}-{stored[20:]}"
    return stored


def _child_id_texts(parents: list[Any]) -> QuerySet:
    # The ids as text: building a UUID object for each of 5,000 children, only to turn it
    # back into text, was most of what an answer naming them cost.
    return (
        Session.objects.filter(parent_session_id__in=parents)
        .order_by(*SPAWN_ORDER)
        .annotate(id_text=Cast("id", output_field=CharField()))
    )


def _live_child_ids(session_id: Any) -> list[str]:
    return [
        _id_text(text) for text in _child_id_texts([session_id]).values_list("id_text", flat=True)
    ]


def _kept(session: Session) -> list[str] | None:
    text = getattr(session, KEPT_CHILD_IDS, None)
    if text is None:
        return None
    return text.split(",") if text else []


def child_ids_in_spawn_order(session: Session) -> list[str]:
    """The ids of the session's children in spawn order, as text: the list kept for it
    (``ChildOrder``, read by ``with_child_ids``), else read live, ids alone, never rows."""
    found = getattr(session, CHILDREN_IN_SPAWN_ORDER, None)
    if found is None:
        found = _kept(session)
        if found is None:
            found = _live_child_ids(session.pk)
        setattr(session, CHILDREN_IN_SPAWN_ORDER, found)
    return found


def attach_child_ids(sessions: list[Session]) -> None:
    """Give each of ``sessions`` (a page) its children's ids in spawn order: those kept, and
    the others' in one query."""
    by_parent: dict[Any, list[str]] = {}
    for session in sessions:
        kept = _kept(session)
        if kept is None:
            by_parent[session.pk] = []
        else:
            setattr(session, CHILDREN_IN_SPAWN_ORDER, kept)
    if not by_parent:
        return
    rows = _child_id_texts(list(by_parent)).values_list("parent_session_id", "id_text")
    for parent, text in rows:
        by_parent[parent].append(_id_text(text))
    for session in sessions:
        if session.pk in by_parent:
            setattr(session, CHILDREN_IN_SPAWN_ORDER, by_parent[session.pk])


def keep_child_order(session: Session, ids: list[str] | None = None) -> None:
    """Keep the session's children's ids in spawn order (``ids``, else read now) so that its
    JSON is rendered without reading them again. The caller holds the session's row lock:
    the triggers that forget the list wait for it (``ChildOrder``)."""
    if ids is None:
        ids = _live_child_ids(session.pk)
    ChildOrder.objects.bulk_create(
        [ChildOrder(parent_id=session.pk, ids=",".join(ids))],
        update_conflicts=True,
        unique_fields=["parent"],
        update_fields=["ids"],
    )


def child_order_kept(session: Session) -> bool:
    """Whether the session's children's order was kept when ``get_session(...,
    with_kept_order=True)`` read it; False for a session read otherwise."""
    return bool(getattr(session, ORDER_KEPT, False))


def unspawned_context_session(*, scope: Scope, context: Component) -> Session | None:
    """The newest active context testing session of ``context`` that has no child yet: one
    that can still be spawned."""
    return (
        Session.objects.filter(
            project_id=scope.project_id,
            type=CONTEXT_TESTING_SESSIONS,
            component=context,
            status=SessionStatus.ACTIVE,
            child_sessions__isnull=True,
        )
        .order_by("-created_at")
        .first()
    )


def spawned_children(*, session: Session) -> QuerySet[Session]:
    """The session's children in spawn order with their components; nothing else joined."""
    return (
        Session.objects.filter(parent_session_id=session.pk, project_id=session.project_id)
        .select_related("component")
        .order_by(*SPAWN_ORDER)
    )


def unfinished_child_sessions(*, session: Session) -> QuerySet[Session]:
    """The children that are not complete, as ``child_sessions`` gives them, leaving out the
    children of excluded components: the run does not wait for what the team left out."""
    return (
        child_sessions(session=session)
        .exclude(status=SessionStatus.COMPLETE)
        .exclude(component__excluded=True)
    )


def components_without_child_session(
    *, scope: Scope, context_id: uuid.UUID, parent_session: Session
) -> list[Component]:
    """The context's components that have no child session under ``parent_session``, in
    spawn order (components added after the spawn, or whose child could not be created)."""
    # NOT IN over the children's components, not NOT EXISTS: PostgreSQL runs it as one hash
    # of the children whatever its statistics say, where NOT EXISTS, on a table it still
    # believed nearly empty right after a big spawn, became a nested loop rescanning the
    # children for each component: 3 to 6 s at 5,000 children (docs/performance.md). A child
    # without a component must not reach NOT IN (one NULL there and nothing matches).
    with_child = Session.objects.filter(
        parent_session_id=parent_session.pk, component_id__isnull=False
    ).values("component_id")
    # Their ids first, from one index (``component_children_check``); the rows of what is
    # missing, usually nothing, after.
    missing = list(
        Component.objects.filter(
            project_id=scope.project_id, parent_component_id=context_id, excluded=False
        )
        .exclude(type=CONTEXT_TYPE)
        .exclude(pk__in=with_child)
        .order_by()
        .values_list("pk", flat=True)
    )
    if not missing:
        return []
    return list(Component.objects.filter(pk__in=missing).order_by(*COMPONENT_SPAWN_ORDER))


def child_sessions(*, session: Session) -> QuerySet[Session]:
    """The session's children in spawn order, each with its component and failure reason.

    One query whatever the number of children: the reason comes from the child's own
    ``state["error"]`` or, failing that, from a subquery on its latest errored interaction.
    """
    return with_failure_reason(
        Session.objects.filter(parent_session_id=session.pk, project_id=session.project_id)
        .select_related("component", "latest_verification")
        .order_by(*SPAWN_ORDER)
    )


def child_ids(*, session: Session) -> QuerySet[Session]:
    """The session's children in spawn order, their ids alone: what a page is cut from
    before its rows are read whole (a row's subqueries then run for that page only)."""
    return (
        Session.objects.filter(parent_session_id=session.pk, project_id=session.project_id)
        .order_by(*SPAWN_ORDER)
        .values_list("pk", flat=True)
    )


def children_in_order(
    *, session: Session, ids: list[Any], with_cost: bool = False
) -> list[Session]:
    """The children ``ids`` names (a page), read whole and in that order: component,
    verification, failure reason, own usage and their own children's ids (``with_cost``:
    their usage alone, as the pages show it)."""
    page = child_sessions(session=session).filter(pk__in=ids)
    rows = with_usage(page, run=False) if with_cost else with_child_ids(page, run=False)
    found = {row.pk: row for row in rows}
    ordered = [found[pk] for pk in ids if pk in found]
    if not with_cost:
        attach_child_ids(ordered)
    return ordered


def child_sessions_with_cost(*, session: Session) -> QuerySet[Session]:
    """``child_sessions`` with each child's own usage (``with_usage``), for the pages and
    answers that show what each child cost."""
    return with_usage(child_sessions(session=session), run=False)


def with_failure_reason(queryset: QuerySet[Session]) -> QuerySet[Session]:
    """Annotate each session with what ``failure_reason`` reads, in the same query."""
    latest_error = (
        Interaction.objects.filter(session=OuterRef("pk"), result__status="error")
        .order_by("-created_at")
        .values_list(KT("result__error_message"))[:1]
    )
    return queryset.annotate(
        state_error=KT("state__error"), latest_error_message=Subquery(latest_error)
    )


def failure_reason(child: Session) -> str:
    """Why a failed session failed; needs a session from ``with_failure_reason`` (as
    ``child_sessions`` gives them)."""
    return child.state_error or child.latest_error_message or NO_REASON_RECORDED


def shown_failure_reason(session: Session) -> str | None:
    """The reason every door shows beside a session: ``failure_reason`` when it failed, None
    for any other status. A session not read through ``with_failure_reason`` costs one query,
    only when it failed."""
    if session.status != SessionStatus.FAILED:
        return None
    if not hasattr(session, "latest_error_message"):
        found = with_failure_reason(Session.objects.filter(pk=session.pk)).first()
        if found is None:  # deleted meanwhile
            return NO_REASON_RECORDED
        session = found
    return failure_reason(session)


def display_name(child: Session) -> str:
    if child.component_id and child.component is not None:
        return child.component.name
    return f"session {child.pk}"


@dataclass(frozen=True)
class ChildrenSummary:
    total: int
    active: int
    complete: int
    failed: int
    cancelled: int
    #: Active children whose lease expired; counted in ``active`` too.
    stalled: int = 0
    #: Over the children's latest verifications.
    lines_total: int = 0
    lines_covered: int = 0
    #: The mutants of the children's latest verifications, by outcome.
    mutants_caught: int = 0
    mutants_survived: int = 0
    #: What every child's steps cost.
    cost_usd: Decimal = Decimal(0)

    def as_dict(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "active": self.active,
            "stalled": self.stalled,
            "complete": self.complete,
            "failed": self.failed,
            "cancelled": self.cancelled,
            "coverage": {
                "lines_total": self.lines_total,
                "lines_covered": self.lines_covered,
                "line_coverage": percent(self.lines_covered, self.lines_total),
            },
            "mutation": {
                "caught": self.mutants_caught,
                "survived": self.mutants_survived,
                "mutation_score": percent(
                    self.mutants_caught, self.mutants_caught + self.mutants_survived
                ),
            },
            "cost_usd": usage.as_number(self.cost_usd),
        }


def summarize(children: list[Session], *, now: datetime | None = None) -> ChildrenSummary:
    now = now or timezone.now()
    counts = {status: 0 for status in SessionStatus.values}
    stalled = lines_total = lines_covered = caught = survived = 0
    cost = Decimal(0)
    for child in children:
        counts[child.status] += 1
        # Children read through ``child_sessions`` carry their cost (``with_usage``).
        cost += Decimal(getattr(child, "usage_cost", 0) or 0)
        stalled += child.is_stalled(now)
        verification = child.latest_verification if child.latest_verification_id else None
        if verification is not None and verification.lines_total is not None:
            lines_total += verification.lines_total
            lines_covered += verification.lines_covered or 0
        if verification is not None and verification.mutants_sampled is not None:
            caught += (verification.mutants_killed or 0) + (verification.mutants_timed_out or 0)
            survived += verification.mutants_survived or 0
    return ChildrenSummary(
        total=len(children),
        stalled=stalled,
        lines_total=lines_total,
        lines_covered=lines_covered,
        mutants_caught=caught,
        mutants_survived=survived,
        cost_usd=cost,
        **counts,
    )


def children_summaries(
    session_ids: list[Any], *, now: datetime | None = None
) -> dict[Any, ChildrenSummary]:
    """The children's summary of each of ``session_ids`` (an empty one for a session without
    children): one grouped query over those sessions' children alone, whatever else is
    listed beside them. A count joined into the listing's own query multiplied its rows by
    the children and made every subquery beside it run once per child."""
    now = now or timezone.now()
    if not session_ids:
        return {}
    # One verification per child at most (its latest), so the sums count each child once.
    counted = (
        Session.objects.filter(parent_session_id__in=session_ids)
        .values("parent_session_id")
        .annotate(
            total=Count("id"),
            stalled=Count("id", filter=stalled_at(now)),
            lines_total=Sum(
                "latest_verification__lines_total",
                filter=Q(latest_verification__lines_total__isnull=False),
            ),
            lines_covered=Sum(
                "latest_verification__lines_covered",
                filter=Q(latest_verification__lines_total__isnull=False),
            ),
            mutants_killed=Sum("latest_verification__mutants_killed"),
            mutants_timed_out=Sum("latest_verification__mutants_timed_out"),
            mutants_survived=Sum("latest_verification__mutants_survived"),
            cost=Sum("own_cost_usd"),
            **{status: Count("id", filter=Q(status=status)) for status in SessionStatus.values},
        )
        .order_by()
    )
    summaries = {
        pk: ChildrenSummary(total=0, **{status: 0 for status in SessionStatus.values})
        for pk in session_ids
    }
    for row in counted:
        parent = row.pop("parent_session_id")
        summaries[parent] = ChildrenSummary(
            lines_total=row.pop("lines_total") or 0,
            lines_covered=row.pop("lines_covered") or 0,
            mutants_caught=(row.pop("mutants_killed") or 0) + (row.pop("mutants_timed_out") or 0),
            mutants_survived=row.pop("mutants_survived") or 0,
            cost_usd=Decimal(row.pop("cost") or 0),
            **row,
        )
    return summaries


def children_summary(session: Session, *, now: datetime | None = None) -> ChildrenSummary:
    """Every child of ``session`` counted, in one query whatever their number."""
    return children_summaries([session.pk], now=now)[session.pk]


def with_children_progress(sessions: list[Session], *, now: datetime | None = None) -> None:
    """Give each of ``sessions`` (a page: already sliced and read) its children's summary,
    for ``children_progress`` to read: one query for the whole page."""
    summaries = children_summaries([session.pk for session in sessions], now=now)
    for session in sessions:
        session.children_summary = summaries[session.pk]


def children_progress(session: Session) -> ChildrenSummary:
    """The summary ``with_children_progress`` gave the session; no query."""
    return session.children_summary


def interactions_for_session(*, session: Session) -> QuerySet[Interaction]:
    return Interaction.objects.filter(session=session).order_by("-created_at", "-id")


# --- what runs cost ----------------------------------------------------------------------


@dataclass(frozen=True)
class UsageTotals:
    """What a session's (or a run's) interactions cost, summed in the database."""

    cost_usd: Decimal = Decimal(0)
    input_tokens: int = 0
    output_tokens: int = 0
    agent_steps: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "cost_usd": usage.as_number(self.cost_usd),
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "agent_steps": self.agent_steps,
        }


# Each usage sum's name in the annotations, the session's column that holds it and its type.
_USAGE_COLUMNS = {
    "cost": ("own_cost_usd", DecimalField(max_digits=20, decimal_places=6)),
    "input": ("own_input_tokens", BigIntegerField()),
    "output": ("own_output_tokens", BigIntegerField()),
    "agent_steps": ("own_agent_steps", BigIntegerField()),
}
_SUM_NAMES = tuple(_USAGE_COLUMNS)


def _children_sum(column: str, output: Any) -> Any:
    """The sum of ``column`` over a session's children, as a scalar subquery over their rows
    (an index on the parent answers it), 0 without children."""
    total = (
        Session.objects.filter(parent_session_id=OuterRef("pk"))
        .order_by()
        .annotate(total=Func(F(column), function="SUM", output_field=output))
    )
    return Coalesce(
        Subquery(total.values("total")[:1], output_field=output), 0, output_field=output
    )


def with_usage(queryset: QuerySet[Session], *, run: bool = True) -> QuerySet[Session]:
    """Annotate each session with its own usage (the totals its row keeps as its results are
    stored) and (``run``) its run's: it and its children, summed for a context session only,
    over the children's rows (never over every step they took)."""
    own = {f"usage_{name}": F(column) for name, (column, _) in _USAGE_COLUMNS.items()}
    if not run:
        return queryset.annotate(**own)
    is_context = Q(type=CONTEXT_TESTING_SESSIONS)
    totals = {
        f"run_usage_{name}": ExpressionWrapper(
            F(column)
            + Case(
                When(is_context, then=_children_sum(column, output)),
                default=Value(0),
                output_field=output,
            ),
            output_field=output,
        )
        for name, (column, output) in _USAGE_COLUMNS.items()
    }
    return queryset.annotate(**own).annotate(**totals)


def _totals(source: Any, prefix: str) -> UsageTotals:
    return UsageTotals(
        cost_usd=Decimal(getattr(source, f"{prefix}_cost") or 0),
        input_tokens=int(getattr(source, f"{prefix}_input") or 0),
        output_tokens=int(getattr(source, f"{prefix}_output") or 0),
        agent_steps=int(getattr(source, f"{prefix}_agent_steps") or 0),
    )


def _annotated(session: Session, prefix: str) -> UsageTotals:
    """The session's ``prefix`` sums (``usage``, ``run_usage``) from ``with_usage``'s
    annotations, else from one query that makes them."""
    if prefix == "run_usage" and not hasattr(session, "run_usage_cost"):
        _attach_run_usage(session)
    elif not hasattr(session, f"{prefix}_cost"):
        names = [f"{prefix}_{name}" for name in _SUM_NAMES]
        found = with_usage(Session.objects.filter(pk=session.pk)).values(*names).first()
        for name, value in (found or {}).items():
            setattr(session, name, value)
    return _totals(session, prefix)


def _attach_run_usage(session: Session) -> None:
    """Set one session's run totals: its own (its row keeps them) and, for a context session,
    its children's, all four summed in one pass over their rows. ``with_usage``'s four
    scalar subqueries read the children four times; rendering one session needs this once."""
    children: dict[str, Any] = {}
    if session.type == CONTEXT_TESTING_SESSIONS:
        children = Session.objects.filter(parent_session_id=session.pk).aggregate(
            **{
                name: Sum(column, output_field=output)
                for name, (column, output) in _USAGE_COLUMNS.items()
            }
        )
    for name, (column, _) in _USAGE_COLUMNS.items():
        setattr(session, f"run_usage_{name}", getattr(session, column) + (children.get(name) or 0))


def own_usage(session: Session) -> UsageTotals:
    """What the session's own steps cost."""
    return _annotated(session, "usage")


def run_usage(session: Session) -> UsageTotals:
    """What the session's run cost: a context session and all its children."""
    return _annotated(session, "run_usage")


def run_cost(session: Session) -> Decimal:
    """What a run (the context session and all its children) has cost so far: one query,
    ``with_run_cost``'s."""
    found = (
        with_run_cost(Session.objects.filter(pk=session.pk))
        .values_list("run_cost", flat=True)
        .first()
    )
    return Decimal(found or 0)


def budget_problem(run: Session | None) -> str | None:
    """``Run budget spent: $<spent> of $<limit>`` when the run (a context session with a
    budget; the caller holds its row lock) has cost its budget or more; else None."""
    if run is None or run.max_cost_usd is None:
        return None
    spent = run_cost(run)
    if spent < run.max_cost_usd:
        return None
    return usage.budget_spent_text(spent, run.max_cost_usd)


def with_run_cost(queryset: QuerySet[Session]) -> QuerySet[Session]:
    """Annotate each session with what its run cost (``run_cost``): it and its children."""
    column, output = _USAGE_COLUMNS["cost"]
    return queryset.annotate(
        run_cost=ExpressionWrapper(F(column) + _children_sum(column, output), output_field=output)
    )


def with_children_cost(queryset: QuerySet[Session]) -> QuerySet[Session]:
    """Annotate each session with what its children cost (``children_cost``)."""
    column, output = _USAGE_COLUMNS["cost"]
    return queryset.annotate(children_cost=_children_sum(column, output))
