"""Leases through the service layer: which runner works on a session, until when, who may take
it over, and which child a runner may claim.

Time moves by writing ``leased_until`` into the past, never by sleeping.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from django.test import override_settings
from django.utils import timezone

from core.errors import Conflict, InvalidInput, NotFound
from sessions_app import selectors, services
from sessions_app.api.serializers import SessionSerializer
from sessions_app.models import CONTEXT_ONLY_CAP, Interaction, Session, SessionStatus
from sessions_app.workflows.session_types import COMPONENT_TEST_SESSIONS, CONTEXT_TESTING_SESSIONS
from sessions_app.workflows.types import Result
from tests.conftest import SPAWN_ORDER
from tests.factories import make_component, make_context_session, make_session
from tests.sessions_app.workflow_driver import drive_to_end, step_once


def lease(session: Session, runner: str, seconds: float) -> datetime:
    """Give ``runner`` the lease until ``seconds`` from now (negative: expired that long ago)."""
    until = timezone.now() + timedelta(seconds=seconds)
    Session.objects.filter(pk=session.pk).update(runner=runner, leased_until=until)
    session.refresh_from_db()
    return until


def lease_of(session: Session) -> tuple[str | None, datetime | None]:
    row = Session.objects.values_list("runner", "leased_until").get(pk=session.pk)
    return row[0], row[1]


def leased_by_message(session: Session) -> str:
    """The 409 text, with the time exactly as the session's JSON shows ``leased_until``."""
    session.refresh_from_db()
    shown = SessionSerializer(session).data["leased_until"]
    return f"Session is leased by {session.runner} until {shown}"


def assert_lease_runs(session: Session, runner: str, seconds: int, before: datetime) -> None:
    """``runner`` holds the lease for ``seconds`` counted from a moment after ``before``."""
    holder, until = lease_of(session)
    assert holder == runner
    assert before + timedelta(seconds=seconds) <= until
    assert until <= timezone.now() + timedelta(seconds=seconds)


def spawned(scope, session: Session) -> dict[str, Session]:
    services.spawn_child_sessions(scope=scope, session_id=session.pk)
    return {c.component.name: c for c in selectors.spawned_children(session=session)}


# The three calls that take, renew or give up a session's own lease, with a runner.
def call_next_command(scope, session, runner, **kwargs):
    return services.next_command(scope=scope, session_id=session.pk, runner=runner, **kwargs)


def call_heartbeat(scope, session, runner, **kwargs):
    return services.heartbeat(scope=scope, session_id=session.pk, runner=runner, **kwargs)


def call_release(scope, session, runner, **kwargs):
    return services.release(scope=scope, session_id=session.pk, runner=runner, **kwargs)


def call_claim_child(scope, session, runner, **kwargs):
    return services.claim_child(scope=scope, session_id=session.pk, runner=runner, **kwargs)


LEASE_CALLS = [call_next_command, call_heartbeat, call_release]
TAKING_CALLS = [call_next_command, call_heartbeat]


# Taking and renewing


def test_next_command_with_a_runner_takes_the_lease_for_lease_seconds(scope, context_session):
    before = timezone.now()

    interaction, created = services.next_command(
        scope=scope, session_id=context_session.pk, runner="ci-1", lease_seconds=120
    )

    assert created and interaction.step_name == "Initialize"
    assert_lease_runs(context_session, "ci-1", 120, before)


def test_next_command_again_by_the_holder_renews_the_lease(scope, context_session):
    first, _ = services.next_command(
        scope=scope, session_id=context_session.pk, runner="ci-1", lease_seconds=60
    )
    before = timezone.now()

    again, created = services.next_command(
        scope=scope, session_id=context_session.pk, runner="ci-1", lease_seconds=3600
    )

    assert (again.pk, created) == (first.pk, False)
    assert_lease_runs(context_session, "ci-1", 3600, before)


def test_heartbeat_renews_the_holders_lease_and_returns_the_session(scope, context_session):
    lease(context_session, "ci-1", 5)
    before = timezone.now()

    session = services.heartbeat(
        scope=scope, session_id=context_session.pk, runner="ci-1", lease_seconds=900
    )

    assert session.pk == context_session.pk
    assert session.runner == "ci-1"
    assert_lease_runs(context_session, "ci-1", 900, before)
    assert lease_of(context_session) == (session.runner, session.leased_until)


def test_heartbeat_takes_an_absent_lease(scope, context_session):
    before = timezone.now()

    services.heartbeat(scope=scope, session_id=context_session.pk, runner="ci-1", lease_seconds=30)

    assert_lease_runs(context_session, "ci-1", 30, before)


def test_next_command_without_a_runner_leaves_a_live_lease_alone(scope, context_session):
    lease(context_session, "ci-1", 300)
    held = lease_of(context_session)

    interaction, created = services.next_command(scope=scope, session_id=context_session.pk)

    assert created and interaction.step_name == "Initialize"
    assert lease_of(context_session) == held


def test_next_command_without_a_runner_takes_no_lease(scope, context_session):
    services.next_command(scope=scope, session_id=context_session.pk)

    assert lease_of(context_session) == (None, None)


@pytest.mark.parametrize("call", [call_next_command, call_heartbeat, call_claim_child])
def test_the_default_lease_is_the_setting(scope, context_session, call):
    spawned(scope, context_session)
    before = timezone.now()

    with override_settings(SESSION_LEASE_SECONDS=42):
        answer = call(scope, context_session, "ci-1")

    holder = answer[0] if call is call_claim_child else context_session
    assert_lease_runs(holder, "ci-1", 42, before)


def test_the_default_setting_is_600_seconds(settings):
    assert settings.SESSION_LEASE_SECONDS == 600


# Another runner's lease


@pytest.mark.parametrize("call", LEASE_CALLS)
def test_another_runners_live_lease_is_a_conflict_naming_it_and_its_time(
    scope, context_session, call
):
    lease(context_session, "ci-1", 300)
    held = lease_of(context_session)

    with pytest.raises(Conflict) as error:
        call(scope, context_session, "ci-2")

    assert error.value.message == leased_by_message(context_session)
    assert error.value.message.startswith("Session is leased by ci-1 until ")
    assert lease_of(context_session) == held
    assert not Interaction.objects.filter(session=context_session).exists()


@pytest.mark.parametrize("call", TAKING_CALLS)
def test_an_expired_lease_is_taken_by_whoever_asks(scope, context_session, call):
    lease(context_session, "ci-1", -1)
    before = timezone.now()

    call(scope, context_session, "ci-2", lease_seconds=60)

    assert_lease_runs(context_session, "ci-2", 60, before)


def test_an_expired_lease_is_released_by_whoever_asks(scope, context_session):
    lease(context_session, "ci-1", -1)

    session = services.release(scope=scope, session_id=context_session.pk, runner="ci-2")

    assert (session.runner, session.leased_until) == (None, None)
    assert lease_of(context_session) == (None, None)


def test_after_a_release_another_runner_takes_the_session(scope, context_session):
    services.next_command(scope=scope, session_id=context_session.pk, runner="ci-1")

    released = services.release(scope=scope, session_id=context_session.pk, runner="ci-1")
    assert (released.runner, released.leased_until) == (None, None)
    assert lease_of(context_session) == (None, None)

    before = timezone.now()
    interaction, created = services.next_command(
        scope=scope, session_id=context_session.pk, runner="ci-2", lease_seconds=10
    )
    # The pending command is handed on, not issued again.
    assert not created and interaction.step_name == "Initialize"
    assert_lease_runs(context_session, "ci-2", 10, before)


def test_release_of_an_unleased_session_changes_nothing(scope, context_session):
    updated_at = context_session.updated_at

    session = services.release(scope=scope, session_id=context_session.pk, runner="ci-1")

    assert (session.runner, session.leased_until) == (None, None)
    assert Session.objects.get(pk=context_session.pk).updated_at == updated_at


@pytest.mark.parametrize("call", LEASE_CALLS)
def test_lease_calls_do_not_see_another_projects_session(context_session, other_scope, call):
    with pytest.raises(NotFound) as error:
        call(other_scope, context_session, "ci-1")

    assert error.value.message == "Session not found"
    assert lease_of(context_session) == (None, None)


# Finished sessions


@pytest.mark.parametrize("status", [SessionStatus.COMPLETE, SessionStatus.FAILED, "cancelled"])
@pytest.mark.parametrize("call", [call_heartbeat, call_release])
def test_heartbeat_or_release_of_a_finished_session_is_a_conflict(
    scope, context_session, status, call
):
    Session.objects.filter(pk=context_session.pk).update(status=status)

    with pytest.raises(Conflict) as error:
        call(scope, context_session, "ci-1")

    assert error.value.message == f"Session is {status}"
    assert lease_of(context_session) == (None, None)


def test_next_command_with_a_runner_for_a_finished_session_takes_no_lease(scope, context_session):
    Session.objects.filter(pk=context_session.pk).update(status=SessionStatus.COMPLETE)

    with pytest.raises(Conflict) as error:
        services.next_command(scope=scope, session_id=context_session.pk, runner="ci-1")

    assert error.value.message == "Session is complete; it has no next command"
    assert lease_of(context_session) == (None, None)


@pytest.fixture
def child(scope, context_session) -> Session:
    return spawned(scope, context_session)["User"]


def test_a_session_completed_by_its_results_loses_its_lease(scope, child):
    services.heartbeat(scope=scope, session_id=child.pk, runner="ci-1")

    drive_to_end(scope, child)

    child.refresh_from_db()
    assert child.status == SessionStatus.COMPLETE
    assert lease_of(child) == (None, None)


def test_a_session_failed_by_its_results_loses_its_lease(scope, child):
    services.heartbeat(scope=scope, session_id=child.pk, runner="ci-1")

    def finalize_fails(interaction):
        if interaction.step_name == "Finalize":
            return Result(status="error", error_message="push rejected")
        return Result(status="ok", code=0)

    drive_to_end(scope, child, finalize_fails)

    child.refresh_from_db()
    assert (child.status, child.state["error"]) == (
        SessionStatus.FAILED,
        "Finalize failed 3 times: push rejected",
    )
    assert lease_of(child) == (None, None)


def test_a_result_that_does_not_end_the_session_keeps_its_lease(scope, child):
    interaction, _ = services.next_command(scope=scope, session_id=child.pk, runner="ci-1")

    # Results are first-wins whoever reports them; reporting carries no runner.
    answered, session = services.submit_result(
        scope=scope, session_id=child.pk, interaction_id=interaction.pk, result=Result("ok")
    )

    assert answered.result["status"] == "ok"
    assert session.runner == "ci-1"


@pytest.mark.parametrize("status", [SessionStatus.FAILED, SessionStatus.CANCELLED])
def test_a_session_failed_or_cancelled_by_patch_loses_its_lease(scope, child, status):
    lease(child, "ci-1", 300)

    session = services.update_session(scope=scope, session_id=child.pk, status=status)

    assert (session.runner, session.leased_until) == (None, None)
    assert lease_of(child) == (None, None)


def test_a_cancelled_session_loses_its_lease(scope, child):
    lease(child, "ci-1", 300)

    session = services.cancel_session(scope=scope, session_id=child.pk)

    assert (session.status, session.runner, session.leased_until) == ("cancelled", None, None)
    assert lease_of(child) == (None, None)


def test_cancelling_the_parent_drops_its_lease_and_its_childrens(scope, context_session):
    children = spawned(scope, context_session)
    lease(context_session, "ci-0", 300)
    for index, kid in enumerate(children.values()):
        lease(kid, f"ci-{index + 1}", 300)

    services.cancel_session(scope=scope, session_id=context_session.pk)

    assert lease_of(context_session) == (None, None)
    rows = Session.objects.filter(parent_session=context_session)
    assert set(rows.values_list("status", "runner", "leased_until")) == {("cancelled", None, None)}


def test_cancelling_the_parent_by_patch_drops_every_lease(scope, context_session):
    children = spawned(scope, context_session)
    lease(context_session, "ci-0", 300)
    lease(children["User"], "ci-1", 300)
    lease(children["Token"], "ci-2", -1)

    services.update_session(scope=scope, session_id=context_session.pk, status="cancelled")

    sessions = Session.objects.filter(project=scope.project)
    assert set(sessions.values_list("status", "runner", "leased_until")) == {
        ("cancelled", None, None)
    }


# Bad lease requests


LEASE_RANGE = "Must be an integer from 1 to 86400."
RUNNER_LENGTH = "Must be 1 to 200 characters."
ALL_CALLS = [call_next_command, call_heartbeat, call_release, call_claim_child]


@pytest.mark.parametrize("seconds", [0, -1, 86_401, 10**30, True, False, 1.5, 60.0, "60"])
@pytest.mark.parametrize("call", [call_next_command, call_heartbeat, call_claim_child])
def test_lease_seconds_outside_1_to_86400_is_refused(scope, context_session, call, seconds):
    spawned(scope, context_session)

    with pytest.raises(InvalidInput) as error:
        call(scope, context_session, "ci-1", lease_seconds=seconds)

    assert error.value.errors == {"lease_seconds": [LEASE_RANGE]}
    assert not Session.objects.filter(project=scope.project, runner__isnull=False).exists()


@pytest.mark.parametrize("seconds", [1, 86_400])
@pytest.mark.parametrize("call", [call_next_command, call_heartbeat, call_claim_child])
def test_lease_seconds_at_the_bounds_is_taken(scope, context_session, call, seconds):
    spawned(scope, context_session)
    before = timezone.now()

    answer = call(scope, context_session, "ci-1", lease_seconds=seconds)

    holder = answer[0] if call is call_claim_child else context_session
    assert_lease_runs(holder, "ci-1", seconds, before)


@pytest.mark.parametrize("runner", ["", "x" * 201, 7, ["ci-1"]])
@pytest.mark.parametrize("call", ALL_CALLS)
def test_a_runner_outside_1_to_200_characters_is_refused(scope, context_session, call, runner):
    spawned(scope, context_session)

    with pytest.raises(InvalidInput) as error:
        call(scope, context_session, runner)

    assert error.value.errors == {"runner": [RUNNER_LENGTH]}
    assert not Session.objects.filter(project=scope.project, runner__isnull=False).exists()
    assert not Interaction.objects.exists()


@pytest.mark.parametrize("runner", ["x", "é" * 200])
@pytest.mark.parametrize("call", [call_next_command, call_heartbeat, call_claim_child])
def test_a_runner_of_1_or_200_characters_is_taken(scope, context_session, call, runner):
    spawned(scope, context_session)

    answer = call(scope, context_session, runner)

    holder = answer[0] if call is call_claim_child else context_session
    assert lease_of(holder)[0] == runner


@pytest.mark.parametrize("call", [call_heartbeat, call_release, call_claim_child])
def test_a_runner_is_required_where_the_lease_is_the_point(scope, context_session, call):
    with pytest.raises(InvalidInput) as error:
        call(scope, context_session, None)

    assert error.value.errors == {"runner": ["This field is required."]}


def test_a_bad_request_is_refused_before_the_lease_is_looked_at(scope, context_session):
    lease(context_session, "ci-1", 300)

    with pytest.raises(InvalidInput):
        services.heartbeat(
            scope=scope, session_id=context_session.pk, runner="ci-2", lease_seconds=0
        )


# Claiming children


def claim(scope, context_session, runner="ci-1", **kwargs):
    return services.claim_child(scope=scope, session_id=context_session.pk, runner=runner, **kwargs)


def test_claim_takes_the_first_child_in_spawn_order_with_its_next_command(scope, context_session):
    children = spawned(scope, context_session)
    before = timezone.now()

    child, interaction = claim(scope, context_session, lease_seconds=90)

    assert child.pk == children[SPAWN_ORDER[0]].pk
    assert (child.runner, child.status) == ("ci-1", SessionStatus.ACTIVE)
    assert_lease_runs(child, "ci-1", 90, before)
    assert (interaction.session_id, interaction.step_name) == (child.pk, "Initialize")
    assert interaction.is_pending
    # The context's own lease is not touched by claiming its children.
    assert lease_of(context_session) == (None, None)


def test_successive_claims_hand_out_each_child_once_in_spawn_order(scope, context_session):
    children = spawned(scope, context_session)

    claimed = [claim(scope, context_session, f"ci-{i}")[0] for i in range(len(children))]

    assert [c.component.name for c in claimed] == SPAWN_ORDER
    assert [lease_of(c)[0] for c in claimed] == [f"ci-{i}" for i in range(len(children))]
    assert claim(scope, context_session, "ci-9") is None


def test_claim_skips_children_with_a_live_lease(scope, context_session):
    children = spawned(scope, context_session)
    lease(children["User"], "elsewhere", 300)
    held = lease_of(children["User"])

    child, _ = claim(scope, context_session)

    assert child.component.name == "Session"
    assert lease_of(children["User"]) == held


def test_claim_skips_finished_children(scope, context_session):
    children = spawned(scope, context_session)
    Session.objects.filter(pk=children["User"].pk).update(status=SessionStatus.COMPLETE)
    Session.objects.filter(pk=children["Session"].pk).update(status=SessionStatus.FAILED)
    Session.objects.filter(pk=children["Token"].pk).update(status=SessionStatus.CANCELLED)

    child, _ = claim(scope, context_session)

    assert child.component.name == "Audit"
    assert claim(scope, context_session, "ci-2") is None


def test_claim_takes_a_stalled_child_with_its_pending_interaction(scope, context_session):
    children = spawned(scope, context_session)
    for name in ("User", "Session", "Audit"):
        lease(children[name], "busy", 300)
    pending, _ = services.next_command(scope=scope, session_id=children["Token"].pk, runner="dead")
    lease(children["Token"], "dead", -5)
    before = timezone.now()

    child, interaction = claim(scope, context_session, "ci-2", lease_seconds=60)

    assert child.pk == children["Token"].pk
    assert_lease_runs(child, "ci-2", 60, before)
    # The dead runner's command is handed on, not issued a second time.
    assert interaction.pk == pending.pk
    assert Interaction.objects.filter(session=child).count() == 1


def test_claim_hands_a_child_its_pending_interaction_after_a_release(scope, context_session):
    children = spawned(scope, context_session)
    step_once(scope, children["User"])
    pending, _ = services.next_command(scope=scope, session_id=children["User"].pk, runner="ci-1")
    services.release(scope=scope, session_id=children["User"].pk, runner="ci-1")

    child, interaction = claim(scope, context_session, "ci-2")

    assert child.pk == children["User"].pk
    assert (interaction.pk, interaction.step_name) == (pending.pk, "GenerateTestsAndFixtures")


def test_claim_with_nothing_claimable_is_none(scope, context_session):
    children = spawned(scope, context_session)
    for kid in children.values():
        lease(kid, "busy", 300)
    held = {kid.pk: lease_of(kid) for kid in children.values()}

    assert claim(scope, context_session) is None
    assert {kid.pk: lease_of(kid) for kid in children.values()} == held
    assert not Interaction.objects.exists()


def test_claim_before_the_spawn_is_none(scope, context_session):
    assert claim(scope, context_session) is None


@pytest.mark.parametrize("status", [SessionStatus.COMPLETE, SessionStatus.FAILED, "cancelled"])
def test_claim_from_a_finished_context_is_none(scope, context_session, status):
    spawned(scope, context_session)
    # Children left active on purpose: the finished parent alone must stop the claim.
    Session.objects.filter(pk=context_session.pk).update(status=status)

    assert claim(scope, context_session) is None
    assert not Session.objects.filter(runner__isnull=False).exists()


def test_the_contexts_own_lease_does_not_stop_another_runner_claiming(scope, context_session):
    spawned(scope, context_session)
    lease(context_session, "ci-1", 300)

    child, _ = claim(scope, context_session, "ci-2")

    assert child.runner == "ci-2"


def test_claim_does_not_see_another_projects_context(scope, context_session, other_scope):
    spawned(scope, context_session)

    with pytest.raises(NotFound) as error:
        claim(other_scope, context_session)

    assert error.value.message == "Session not found"
    assert not Session.objects.filter(runner__isnull=False).exists()


def test_claim_never_hands_out_a_child_of_another_project(scope, context_session, other_scope):
    children = spawned(scope, context_session)
    # A child moved to another project by hand is no longer the scope's to hand out.
    Session.objects.filter(pk=children["User"].pk).update(project=other_scope.project)

    child, _ = claim(scope, context_session)

    assert child.component.name == "Session"


# The cap on parallel children


@pytest.fixture
def capped(scope, context):
    session = make_context_session(scope, context, max_parallel_children=2)
    spawned(scope, session)
    return session


def test_claims_stop_at_max_parallel_children(scope, capped):
    first, _ = claim(scope, capped, "ci-1")
    second, _ = claim(scope, capped, "ci-2")

    assert [first.component.name, second.component.name] == SPAWN_ORDER[:2]
    assert claim(scope, capped, "ci-3") is None
    assert Session.objects.filter(parent_session=capped, runner__isnull=False).count() == 2


def test_a_released_child_frees_its_place_under_the_cap(scope, capped):
    first, _ = claim(scope, capped, "ci-1")
    claim(scope, capped, "ci-2")
    services.release(scope=scope, session_id=first.pk, runner="ci-1")

    again, _ = claim(scope, capped, "ci-3")

    # The released child is first in spawn order again.
    assert (again.pk, again.runner) == (first.pk, "ci-3")


def test_a_finished_child_frees_its_place_under_the_cap(scope, capped):
    first, _ = claim(scope, capped, "ci-1")
    claim(scope, capped, "ci-2")
    drive_to_end(scope, first)

    third, _ = claim(scope, capped, "ci-3")

    assert third.component.name == SPAWN_ORDER[2]


def test_an_expired_lease_does_not_count_against_the_cap(scope, capped):
    first, _ = claim(scope, capped, "ci-1")
    claim(scope, capped, "ci-2")
    lease(first, "ci-1", -1)

    again, _ = claim(scope, capped, "ci-3")

    # Two live leases again: the stalled child went to the new runner.
    assert (again.pk, again.runner) == (first.pk, "ci-3")
    assert claim(scope, capped, "ci-4") is None


def test_a_cap_of_one_runs_children_one_at_a_time(scope, context):
    session = make_context_session(scope, context, max_parallel_children=1)
    spawned(scope, session)

    order = []
    while (claimed := claim(scope, session, "ci-1")) is not None:
        child, _ = claimed
        assert claim(scope, session, "ci-2") is None
        order.append(child.component.name)
        drive_to_end(scope, child)

    assert order == SPAWN_ORDER


def test_the_spawn_command_carries_the_cap_as_max_parallel(scope, capped):
    command = services.spawn_child_sessions(scope=scope, session_id=capped.pk)

    assert command.metadata["max_parallel"] == 2


def test_the_spawn_command_without_a_cap_has_max_parallel_null(scope, context_session):
    command = services.spawn_child_sessions(scope=scope, session_id=context_session.pk)

    assert "max_parallel" in command.metadata
    assert command.metadata["max_parallel"] is None


def test_the_cap_is_read_when_the_command_is_made(scope, context_session):
    spawned(scope, context_session)
    services.update_session(scope=scope, session_id=context_session.pk, max_parallel_children=7)

    command = services.spawn_child_sessions(scope=scope, session_id=context_session.pk)

    assert command.metadata["max_parallel"] == 7


# Setting the cap


def test_a_context_session_is_created_with_a_cap(scope, context):
    session = services.create_session(
        scope=scope, type=CONTEXT_TESTING_SESSIONS, component=context, max_parallel_children=3
    )

    assert Session.objects.get(pk=session.pk).max_parallel_children == 3


@pytest.mark.parametrize("cap", [1, 1000, None])
def test_the_caps_bounds_are_taken_on_create_and_change(scope, context, cap):
    created = services.create_session(
        scope=scope, type=CONTEXT_TESTING_SESSIONS, component=context, max_parallel_children=cap
    )
    changed = services.update_session(scope=scope, session_id=created.pk, max_parallel_children=cap)

    assert created.max_parallel_children == changed.max_parallel_children == cap


@pytest.mark.parametrize(
    ("cap", "message"),
    [
        (0, "Ensure this value is greater than or equal to 1."),
        (1001, "Ensure this value is less than or equal to 1000."),
    ],
)
def test_a_cap_outside_1_to_1000_is_refused_on_create(scope, context, cap, message):
    with pytest.raises(InvalidInput) as error:
        services.create_session(
            scope=scope, type=CONTEXT_TESTING_SESSIONS, component=context, max_parallel_children=cap
        )

    assert message in error.value.errors["max_parallel_children"]
    assert not Session.objects.exists()


@pytest.mark.parametrize(
    ("cap", "message"),
    [
        (0, "Ensure this value is greater than or equal to 1."),
        (1001, "Ensure this value is less than or equal to 1000."),
    ],
)
def test_a_cap_outside_1_to_1000_is_refused_on_change(scope, context_session, cap, message):
    with pytest.raises(InvalidInput) as error:
        services.update_session(
            scope=scope, session_id=context_session.pk, max_parallel_children=cap
        )

    assert message in error.value.errors["max_parallel_children"]
    assert Session.objects.get(pk=context_session.pk).max_parallel_children is None


def test_a_cap_on_a_component_session_is_refused_on_create(scope, project):
    with pytest.raises(InvalidInput) as error:
        services.create_session(
            scope=scope,
            type=COMPONENT_TEST_SESSIONS,
            component=make_component(project),
            max_parallel_children=2,
        )

    assert error.value.errors == {"max_parallel_children": [CONTEXT_ONLY_CAP]}
    assert not Session.objects.exists()


def test_a_cap_on_a_component_session_is_refused_on_change(scope, child):
    with pytest.raises(InvalidInput) as error:
        services.update_session(scope=scope, session_id=child.pk, max_parallel_children=2)

    assert error.value.errors == {"max_parallel_children": [CONTEXT_ONLY_CAP]}
    assert Session.objects.get(pk=child.pk).max_parallel_children is None


def test_the_cap_text_names_the_context_type():
    assert CONTEXT_ONLY_CAP == (
        "Only ContextTestingSessions sessions have a cap on parallel children."
    )


# Stalled children in the summary


def test_the_summary_counts_stalled_children_among_the_active(scope, context_session):
    children = spawned(scope, context_session)
    lease(children["User"], "dead", -1)
    lease(children["Session"], "alive", 300)
    lease(children["Token"], "dead", -60)
    Session.objects.filter(pk=children["Token"].pk).update(status=SessionStatus.FAILED)

    summary = selectors.summarize(list(selectors.child_sessions(session=context_session)))
    annotated = selectors.children_summary(context_session)

    expected = {
        "total": 4,
        "active": 3,
        "stalled": 1,
        "complete": 0,
        "failed": 1,
        "cancelled": 0,
        "coverage": {"lines_total": 0, "lines_covered": 0, "line_coverage": None},
        "mutation": {"caught": 0, "survived": 0, "mutation_score": None},
        "cost_usd": 0.0,
    }
    assert summary.as_dict() == expected
    assert annotated.as_dict() == expected


def test_a_child_is_stalled_from_the_moment_its_lease_expires(scope, context_session):
    children = spawned(scope, context_session)
    until = lease(children["User"], "ci-1", 300)
    listed = list(selectors.child_sessions(session=context_session))

    assert selectors.summarize(listed, now=until - timedelta(microseconds=1)).stalled == 0
    assert selectors.summarize(listed, now=until).stalled == 1


def test_a_session_that_never_had_a_lease_is_not_stalled(scope, context):
    session = make_session(scope, component=context)

    assert not session.is_stalled(timezone.now() + timedelta(days=365))
