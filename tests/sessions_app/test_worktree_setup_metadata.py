"""The project's worktree setup command reaches the runner with every command of a component
session (the runner runs it in a child's new worktree before the first step it runs there),
never with a context's; one stored before the rules is refused where it is used."""

from __future__ import annotations

import pytest

from components_app.models import Project
from core.errors import StepError
from sessions_app import services
from sessions_app.models import Session
from tests.factories import make_context_session
from tests.sessions_app.workflow_driver import step_once

SETUP = "python -m venv .venv && .venv/bin/pip install -q -e ."


def _child(scope, context):
    context_session = make_context_session(scope, context)
    services.spawn_child_sessions(scope=scope, session_id=context_session.pk)
    return context_session, Session.objects.filter(parent_session=context_session).first()


def test_every_command_of_a_component_session_carries_the_setup_command(scope, project, context):
    Project.objects.filter(pk=project.pk).update(worktree_setup_command=SETUP)
    scope.project.refresh_from_db()
    _, child = _child(scope, context)

    seen = []
    for _ in range(3):
        interaction, _ = services.next_command(scope=scope, session_id=child.pk)
        seen.append(interaction.command["metadata"].get("worktree_setup_command"))
        step_once(scope, child)

    assert seen == [SETUP, SETUP, SETUP]


def test_a_context_sessions_commands_do_not(scope, project, context):
    Project.objects.filter(pk=project.pk).update(worktree_setup_command=SETUP)
    scope.project.refresh_from_db()
    context_session, _ = _child(scope, context)

    interaction, _ = services.next_command(scope=scope, session_id=context_session.pk)

    assert "worktree_setup_command" not in interaction.command["metadata"]


def test_without_a_setup_command_nothing_is_added(scope, context):
    _, child = _child(scope, context)

    interaction, _ = services.next_command(scope=scope, session_id=child.pk)

    assert "worktree_setup_command" not in interaction.command["metadata"]


@pytest.mark.parametrize("stored", ["make setup\nrm -rf ~", "echo 'open"])
def test_a_setup_command_stored_before_the_rules_is_refused_where_it_is_used(
    scope, project, context, stored
):
    Project.objects.filter(pk=project.pk).update(worktree_setup_command=stored)
    scope.project.refresh_from_db()
    _, child = _child(scope, context)

    with pytest.raises(StepError) as error:
        services.next_command(scope=scope, session_id=child.pk)

    assert error.value.message.startswith("The project's worktree setup command cannot be used: ")
    assert not child.interactions.exists()
