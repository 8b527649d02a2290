"""Rules that keep a session's workflow coherent whatever a client sends."""

import math

import pytest

from core.errors import Conflict, InvalidInput
from sessions_app import services
from sessions_app.models import Session, SessionStatus
from sessions_app.workflows.types import Result
from tests.factories import make_child
from tests.sessions_app.workflow_driver import drive_to_end


@pytest.fixture
def spawned(scope, context_session):
    services.spawn_child_sessions(scope=scope, session_id=context_session.pk)
    return list(Session.objects.filter(parent_session=context_session))


class TestStatusChanges:
    def test_a_complete_session_cannot_be_reopened(self, scope, spawned):
        child = spawned[0]
        drive_to_end(scope, child)

        with pytest.raises(Conflict) as error:
            services.update_session(scope=scope, session_id=child.pk, status="active")

        assert error.value.message == "Session is complete; its status cannot change"
        child.refresh_from_db()
        assert child.status == SessionStatus.COMPLETE

    @pytest.mark.parametrize("finished", ["failed", "cancelled"])
    def test_a_failed_or_cancelled_session_may_be_marked_complete_by_hand(
        self, scope, spawned, finished
    ):
        child = spawned[0]
        services.update_session(scope=scope, session_id=child.pk, status=finished)

        with pytest.raises(Conflict) as error:
            services.update_session(scope=scope, session_id=child.pk, status="active")
        assert error.value.message == f"Session is {finished}; it can only be marked complete"

        accepted = services.update_session(scope=scope, session_id=child.pk, status="complete")
        assert accepted.status == SessionStatus.COMPLETE

    def test_setting_cancelled_cancels_running_children_too(self, scope, context_session, spawned):
        drive_to_end(scope, spawned[0])

        services.update_session(scope=scope, session_id=context_session.pk, status="cancelled")

        statuses = sorted(
            Session.objects.filter(parent_session=context_session).values_list("status", flat=True)
        )
        assert statuses == ["cancelled", "cancelled", "cancelled", "complete"]

    def test_a_session_reopened_behind_the_services_back_gets_a_conflict_not_a_crash(
        self, scope, spawned
    ):
        child = spawned[0]
        drive_to_end(scope, child)
        Session.objects.filter(pk=child.pk).update(status=SessionStatus.ACTIVE)

        with pytest.raises(Conflict) as error:
            services.next_command(scope=scope, session_id=child.pk)

        assert (
            error.value.message == "Session's workflow has ended (complete); it has no next command"
        )


@pytest.mark.parametrize("status", ["cancelled", "complete", "failed"])
def test_a_finished_context_session_spawns_nothing(scope, context_session, status):
    Session.objects.filter(pk=context_session.pk).update(status=status)

    with pytest.raises(Conflict) as error:
        services.spawn_child_sessions(scope=scope, session_id=context_session.pk)

    assert error.value.message == f"Session is {status}; it cannot spawn child sessions"
    assert not Session.objects.filter(parent_session=context_session).exists()


class TestState:
    @pytest.mark.parametrize(
        ("state", "message"),
        [
            ({"branch_name": 5}, 'state["branch_name"] must be a string.'),
            ({"branch_name": "  "}, 'state["branch_name"] must not be empty.'),
            ({"test_file": ["a.py"]}, 'state["test_file"] must be a string.'),
            ({"fix_attempts": None}, 'state["fix_attempts"] must be an integer.'),
            ({"fix_attempts": "2"}, 'state["fix_attempts"] must be an integer.'),
            ({"fix_attempts": True}, 'state["fix_attempts"] must be an integer.'),
            ({"fix_attempts": -1}, 'state["fix_attempts"] must not be negative.'),
            ({"last_test_output": 3}, 'state["last_test_output"] must be a string.'),
            ({"error": {"why": "x"}}, 'state["error"] must be a string.'),
            ({"notes": math.nan}, "JSON numbers must be finite."),
            ({"notes": "a\x00b"}, "JSON strings cannot contain the NUL character (\\u0000)."),
            ([1, 2], "State must be a JSON object."),
        ],
    )
    def test_state_the_workflows_could_not_read_is_refused(
        self, scope, context_session, state, message
    ):
        with pytest.raises(InvalidInput) as error:
            services.update_session(scope=scope, session_id=context_session.pk, state=state)

        assert error.value.errors == {"state": [message]}
        context_session.refresh_from_db()
        assert context_session.state == {}

    def test_a_client_may_keep_its_own_keys_in_state(self, scope, context_session):
        state = {"notes": {"model": "opus", "tries": [1, 2]}, "branch_name": "agentic/x"}

        updated = services.update_session(scope=scope, session_id=context_session.pk, state=state)

        assert updated.state == state

    @pytest.mark.parametrize(
        "key",
        [
            "test_file",
            "fix_attempts",
            "improve_attempts",
            "previous_errors",
            "verification",
            "last_test_output",
            "pull_request_url",
        ],
    )
    def test_the_workflows_own_keys_cannot_be_set_by_a_client(self, scope, context, key):
        values = {
            "test_file": ".github/workflows/x.yml",
            "fix_attempts": 0,
            "improve_attempts": 0,
            "previous_errors": [],
            "verification": {},
            "last_test_output": "all green",
            "pull_request_url": "https://example.com/pr/1",
        }
        refused = {"state": [f'state["{key}"] is written by the workflow; a client cannot set it.']}
        with pytest.raises(InvalidInput) as error:
            services.create_session(
                scope=scope, type="ContextTestingSessions", component=context,
                state={key: values[key]},
            )  # fmt: skip
        assert error.value.errors == refused
        session = services.create_session(
            scope=scope, type="ContextTestingSessions", component=context
        )
        with pytest.raises(InvalidInput) as error:
            services.update_session(scope=scope, session_id=session.pk, state={key: values[key]})
        assert error.value.errors == refused
        session.refresh_from_db()
        assert session.state == {}

    def test_a_patch_keeps_the_workflows_keys_it_leaves_out_and_may_repeat_them(
        self, scope, context_session
    ):
        Session.objects.filter(pk=context_session.pk).update(
            state={"test_file": "tests/test_a.py", "fix_attempts": 2, "note": "old"}
        )

        kept = services.update_session(
            scope=scope, session_id=context_session.pk, state={"note": "new"}
        )
        assert kept.state == {"note": "new", "test_file": "tests/test_a.py", "fix_attempts": 2}
        same = services.update_session(
            scope=scope,
            session_id=context_session.pk,
            state={"test_file": "tests/test_a.py", "note": "newer"},
        )
        assert same.state["note"] == "newer"
        with pytest.raises(InvalidInput):
            services.update_session(
                scope=scope, session_id=context_session.pk, state={"test_file": ".gitmodules"}
            )
        assert Session.objects.get(pk=context_session.pk).state["test_file"] == "tests/test_a.py"

    def test_create_refuses_unreadable_state_too(self, scope, context):
        with pytest.raises(InvalidInput) as error:
            services.create_session(
                scope=scope,
                type="ContextTestingSessions",
                component=context,
                state={"branch_name": 5},
            )

        assert list(error.value.errors) == ["state"]


def test_a_child_created_beside_a_concurrent_spawn_is_a_clear_error(
    scope, context, context_session, monkeypatch
):
    component = context.child_components.first()
    make_child(context_session, component)
    # Validation ran before the other writer's row existed: only the database sees the clash.
    monkeypatch.setattr(services, "_validated", lambda *args, **kwargs: None)

    with pytest.raises(InvalidInput) as error:
        services.create_session(
            scope=scope,
            type="ComponentTestSessions",
            component=component,
            parent_session=context_session,
        )

    assert error.value.errors == {"component": [services.CHILD_EXISTS]}
    assert Session.objects.filter(parent_session=context_session).count() == 1


def test_a_result_for_a_child_of_a_cancelled_parent_is_a_conflict(scope, context_session, spawned):
    child = spawned[0]
    pending, _ = services.next_command(scope=scope, session_id=child.pk)
    services.cancel_session(scope=scope, session_id=context_session.pk)

    with pytest.raises(Conflict):
        services.submit_result(
            scope=scope,
            session_id=child.pk,
            interaction_id=pending.pk,
            result=Result(status="ok"),
        )
