"""A session's own usage totals: added to as each result is stored, kept by a retry, made again
from the steps by ``recount_from_steps`` and by the migration that added them."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from sessions_app import selectors, services
from sessions_app.models import DailyCost, Session, SessionStatus
from tests.factories import add_finished_step
from tests.sessions_app.test_usage_and_budget import answer, run, to_generate  # noqa: F401

OWN = services.OWN_USAGE_FIELDS


def totals(session: Session) -> tuple:
    session = Session.objects.get(pk=session.pk)
    return tuple(getattr(session, name) for name in OWN)


def test_each_result_adds_its_usage_to_its_sessions_row(scope, run):  # noqa: F811
    session, (cart, price, _) = run
    assert totals(cart) == (0, 0, 0, 0)
    to_generate(scope, cart)
    assert totals(cart) == (0, 0, 0, 0)  # Initialize: no usage, no agent step

    answer(scope, cart, usage={"cost_usd": 0.25, "input_tokens": 10, "output_tokens": 3})
    assert totals(cart) == (Decimal("0.25"), 10, 3, 1)
    answer(scope, cart, status="error", code=1)  # RunTests fails: not an agent step
    assert totals(cart) == (Decimal("0.25"), 10, 3, 1)
    answer(scope, cart)  # the fix reports nothing, and is still an agent step taken
    assert totals(cart) == (Decimal("0.25"), 10, 3, 2)
    to_generate(scope, price)
    answer(scope, price, usage={"cost_usd": 1.5})

    assert totals(price) == (Decimal("1.5"), 0, 0, 1)
    assert totals(session) == (0, 0, 0, 0)  # the context's own steps cost nothing
    assert selectors.run_cost(session) == Decimal("1.75")
    assert selectors.run_usage(Session.objects.get(pk=session.pk)).as_dict() == {
        "cost_usd": 1.75,
        "input_tokens": 10,
        "output_tokens": 3,
        "agent_steps": 3,
    }


def test_a_retry_counts_the_pending_agent_step_it_closes(scope, run):  # noqa: F811
    _, (cart, *_) = run
    to_generate(scope, cart)
    services.next_command(scope=scope, session_id=cart.pk)  # GenerateTestsAndFixtures, pending
    Session.objects.filter(pk=cart.pk).update(status=SessionStatus.FAILED)

    services.retry_session(scope=scope, session_id=cart.pk)

    assert totals(cart)[3] == 1
    kept = totals(cart)
    services.recount_from_steps(Session.objects.filter(pk=cart.pk))
    assert totals(cart) == kept


def test_recounting_makes_the_totals_from_the_steps_and_clears_a_wrong_one(scope, run):  # noqa: F811
    session, (cart, price, tax) = run
    add_finished_step(cart, "GenerateTestsAndFixtures", cost="0.40")
    add_finished_step(cart, "RunTests", cost=None)
    Session.objects.filter(pk=tax.pk).update(own_cost_usd=Decimal("9"), own_agent_steps=4)

    written = services.recount_from_steps(Session.objects.filter(parent_session=session))

    assert written == 3
    assert totals(cart) == (Decimal("0.4"), 0, 0, 1)
    assert totals(tax) == totals(price) == (0, 0, 0, 0)


def test_the_usage_totals_cannot_go_negative(scope, run):  # noqa: F811
    from django.db import IntegrityError, transaction

    _, (cart, *_) = run
    with pytest.raises(IntegrityError), transaction.atomic():
        Session.objects.filter(pk=cart.pk).update(own_cost_usd=Decimal("-0.01"))


@pytest.mark.django_db(transaction=True)
def test_the_migration_counts_the_steps_sessions_already_have(scope, run):  # noqa: F811
    session, (cart, price, _) = run
    to_generate(scope, cart)
    answer(scope, cart, usage={"cost_usd": 0.5, "input_tokens": 7, "output_tokens": 2})
    to_generate(scope, price)
    answer(scope, price, usage={"cost_usd": 0.125})
    expected = {child.pk: totals(child) for child in (cart, price)}
    times = {
        child.pk: (child.first_step_at, child.last_result_at)
        for child in Session.objects.filter(pk__in=expected)
    }
    Session.objects.update(own_cost_usd=0, own_input_tokens=0, own_output_tokens=0)

    executor = MigrationExecutor(connection)
    executor.migrate([("sessions_app", "0006_usage_and_budget")])
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())

    for pk, kept in expected.items():
        assert totals(Session.objects.get(pk=pk)) == kept
        migrated = Session.objects.get(pk=pk)
        assert (migrated.first_step_at, migrated.last_result_at) == times[pk]
        assert migrated.seconds is not None
    assert selectors.run_cost(session) == Decimal("0.625")
    assert [(day.day, day.cost_usd) for day in DailyCost.objects.all()] == [
        (timezone.localdate(), Decimal("0.625"))
    ]


# --- step times and the cost of each day --------------------------------------------------


def test_a_sessions_first_step_and_last_result_are_kept_with_the_time_between(scope, run):  # noqa: F811
    _, (cart, *_) = run
    assert Session.objects.get(pk=cart.pk).first_step_at is None
    interaction, _ = services.next_command(scope=scope, session_id=cart.pk)
    first = Session.objects.get(pk=cart.pk)
    assert first.first_step_at == interaction.created_at
    assert first.last_result_at is None and first.seconds is None

    answer_one = services.submit_result(
        scope=scope,
        session_id=cart.pk,
        interaction_id=interaction.pk,
        result=services.Result(status="ok", code=0),
    )[0]
    answer(scope, cart)  # GenerateTestsAndFixtures
    later = Session.objects.get(pk=cart.pk)

    assert later.first_step_at == interaction.created_at  # the first stays the first
    assert later.last_result_at > answer_one.completed_at
    assert later.last_result_at == cart.interactions.order_by("-completed_at")[0].completed_at
    expected = (later.last_result_at - later.first_step_at).total_seconds()
    assert later.seconds == pytest.approx(expected, abs=0.002)


def test_a_retry_closing_a_pending_step_is_the_last_result_so_far(scope, run):  # noqa: F811
    _, (cart, *_) = run
    to_generate(scope, cart)
    services.next_command(scope=scope, session_id=cart.pk)
    Session.objects.filter(pk=cart.pk).update(status=SessionStatus.FAILED)

    services.retry_session(scope=scope, session_id=cart.pk)

    closed = cart.interactions.get(step_name="GenerateTestsAndFixtures")
    assert Session.objects.get(pk=cart.pk).last_result_at == closed.completed_at


def test_each_costed_result_adds_to_its_projects_cost_of_the_day(scope, run):  # noqa: F811
    from datetime import timedelta

    from django.utils import timezone

    from sessions_app.models import DailyCost

    _, (cart, price, tax) = run
    for child, cost in ((cart, 0.25), (price, 0.5)):
        to_generate(scope, child)
        answer(scope, child, usage={"cost_usd": cost})
    to_generate(scope, tax)
    answer(scope, tax, usage={"cost_usd": 0, "input_tokens": 5})  # nothing spent: no row

    (today,) = DailyCost.objects.filter(project=scope.project)
    assert (today.day, today.cost_usd) == (timezone.localdate(), Decimal("0.75"))
    # A step finished yesterday lands on yesterday.
    yesterday = timezone.now() - timedelta(days=1)
    add_finished_step(tax, "ImproveTests", cost="2", completed_at=yesterday)
    days = dict(DailyCost.objects.filter(project=scope.project).values_list("day", "cost_usd"))
    assert days == {
        timezone.localdate(): Decimal("0.75"),
        timezone.localdate(yesterday): Decimal("2"),
    }
