"""A person types a session's short id (its first 8 characters) wherever a command takes an id."""

import uuid

import pytest

from sessions_app.models import Session, SessionStatus
from tests.commands.conftest import run
from tests.factories import make_context, make_context_session


def with_id(session: Session, new_id: str) -> Session:
    """``session`` moved to a chosen id, so that two sessions can share a prefix."""
    Session.objects.filter(pk=session.pk).update(id=uuid.UUID(new_id))
    return Session.objects.get(pk=new_id)


@pytest.fixture
def twins(scope, project):
    """Two context sessions whose ids share their first 8 characters."""
    first = with_id(
        make_context_session(scope, make_context(project, [("User", 1)])),
        "abcd1234-0000-4000-8000-000000000001",
    )
    second = with_id(
        make_context_session(scope, make_context(project, [("Token", 1)])),
        "abcd1234-0000-4000-8000-000000000002",
    )
    return first, second


AMBIGUOUS = (
    "Session id abcd1234 is ambiguous; it matches "
    "abcd1234-0000-4000-8000-000000000001 (Accounts), "
    "abcd1234-0000-4000-8000-000000000002 (Accounts)\n"
)


def test_spawn_sessions_takes_a_short_id(scope, context_session):
    status, stdout, stderr = run("spawn_sessions", str(context_session.pk)[:8])

    assert (status, stderr) == (0, "")
    assert len(stdout.splitlines()) == 4
    assert Session.objects.filter(parent_session=context_session).count() == 4


def test_retry_sessions_takes_short_ids(scope, context_session):
    Session.objects.filter(pk=context_session.pk).update(status=SessionStatus.FAILED)

    status, stdout, _ = run("retry_sessions", str(context_session.pk)[:8].upper())

    assert (status, stdout) == (0, f"{context_session.pk}\n")
    context_session.refresh_from_db()
    assert (context_session.status, context_session.attempt) == (SessionStatus.ACTIVE, 2)


@pytest.mark.parametrize("command", ["spawn_sessions", "retry_sessions", "session_status"])
def test_an_ambiguous_prefix_is_an_error_naming_the_matches(twins, command):
    assert run(command, "abcd1234") == (1, "", AMBIGUOUS)
    # Nothing was done to either session.
    assert not Session.objects.filter(parent_session__in=twins).exists()


@pytest.mark.parametrize(
    "typed",
    [
        "abcd1234-0000-4000-8000-00000000000",  # hyphenated, one digit short
        "ABCD12340000400080000000000000",  # no hyphens, upper case
        " abcd1234-0000-4000-8000-000000000002 ",  # the full id, with spaces around
    ],
)
def test_a_longer_prefix_with_or_without_hyphens_finds_the_one_it_names(twins, typed):
    first, second = twins
    Session.objects.filter(pk=first.pk).update(id=uuid.UUID("abcd1234-0000-4000-8000-100000000001"))

    status, stdout, stderr = run("session_status", typed)

    assert (status, stderr) == (0, "")
    assert stdout.splitlines()[0] == f"Session {second.pk}"


def test_a_longer_prefix_both_share_is_still_ambiguous(twins):
    assert run("session_status", "abcd1234-00") == (
        1,
        "",
        AMBIGUOUS.replace("abcd1234 ", "abcd1234-00 "),
    )


@pytest.mark.parametrize(
    "typed", ["abc", "abcd1235", "zzzz1234", "abcd1234-0000-4000-8000-00000000000x"]
)
def test_a_prefix_that_matches_nothing_is_not_found(twins, typed):
    assert run("session_status", typed) == (1, "", "Session not found\n")
