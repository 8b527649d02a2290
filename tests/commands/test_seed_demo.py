"""``manage.py seed_demo``, which ``scripts/serve`` runs at every start."""

from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from rest_framework.authtoken.models import Token

from components_app.models import Component, Project
from sessions_app.management.commands.seed_demo import MANAGE_PY
from sessions_app.models import Session, SessionStatus
from tests.commands.conftest import run

README = Path(__file__).resolve().parents[2] / "README.md"


def seed() -> list[str]:
    status, stdout, stderr = run("seed_demo")
    assert (status, stderr) == (0, "")
    return stdout.splitlines()


def counts() -> dict[str, int]:
    return {
        model.__name__: model.objects.count()
        for model in (get_user_model(), Token, Project, Component, Session)
    }


def hint_of(lines: list[str]) -> list[str]:
    """The manage.py command the output suggests, as arguments."""
    [hint] = [line for line in lines if "manage.py" in line]
    _, _, command = hint.partition(f"{MANAGE_PY} ")
    assert command, hint
    return command.split()


def test_runs_after_the_first_create_nothing_and_say_so(db):
    first = seed()
    made = counts()
    again = [seed(), seed()]

    assert made == {"User": 1, "Token": 1, "Project": 1, "Component": 6, "Session": 1}
    assert counts() == made
    assert first[0] == (
        'Demo data created: user demo, API token, project "Demo shop", 6 components, '
        "a context testing session."
    )
    session_id = first[-1].split()[-1]
    for lines in again:
        assert lines[0] == "Demo data already there; nothing created."
        assert lines[1:] == first[1:]
    assert hint_of(first) == ["spawn_sessions", session_id[:8]]
    assert f"Not spawned yet: .venv/bin/python manage.py spawn_sessions {session_id[:8]}" in first
    # Written the way the README runs manage.py, for whoever followed it.
    assert "    .venv/bin/python manage.py spawn_sessions <session_id>" in README.read_text()
    # The hint is a command that works: the same one run here spawns the five children.
    status, children, _ = run(*hint_of(first))
    assert (status, len(children.splitlines())) == (0, 5)


@pytest.mark.parametrize(
    "status", [SessionStatus.ACTIVE, SessionStatus.COMPLETE, SessionStatus.FAILED]
)
def test_a_spawned_demo_session_is_kept_not_replaced(db, status):
    session_id = seed()[-1].split()[-1]
    assert run("spawn_sessions", session_id)[0] == 0
    Session.objects.filter(pk=session_id).update(status=status)
    made = counts()

    later = [seed(), seed()]

    assert counts() == made
    assert made["Session"] == 6  # the context and its five children
    for lines in later:
        assert lines[0] == "Demo data already there; nothing created."
        assert lines[-1] == f"Context testing session {session_id}"
        assert f"Session {status}, spawned: {MANAGE_PY} session_status {session_id[:8]}" in lines
    assert run(*hint_of(later[-1]))[0] == 0


def test_a_session_finished_before_it_was_spawned_is_kept_too(db):
    session_id = seed()[-1].split()[-1]
    Session.objects.filter(pk=session_id).update(status=SessionStatus.CANCELLED)

    lines = seed()

    assert Session.objects.count() == 1
    assert lines[0] == "Demo data already there; nothing created."
    assert f"Session cancelled: {MANAGE_PY} session_status {session_id[:8]}" in lines


def test_only_what_is_missing_is_made_again(db):
    seed()
    Session.objects.all().delete()

    lines = seed()

    assert lines[0] == "Demo data created: a context testing session."
    assert counts()["Session"] == 1
    assert hint_of(lines) == ["spawn_sessions", lines[-1].split()[-1][:8]]
