"""Nested contexts: a subpackage's context sits under its package's (a component of type
``context`` whose parent is a context). It is a run of its own: its parent's spawn step creates
no child for it, spawn-missing and the result check do not count it missing, and its own run
spawns its modules."""

from __future__ import annotations

import pytest

from core.errors import StepError
from sessions_app import selectors, services
from sessions_app.models import Session, SessionStatus
from tests.factories import make_component, make_context_session


@pytest.fixture
def marshmallow(project):
    """marshmallow 3's shape: the package's modules, and experimental/ with its own."""
    top = make_component(project, "marshmallow", module_name="marshmallow", type="context")
    for name, priority in (("schema", 568), ("fields", 1040)):
        make_component(
            project, name, module_name=f"marshmallow.{name}", priority=priority,
            parent_component=top,
        )  # fmt: skip
    nested = make_component(
        project, "experimental", module_name="marshmallow.experimental", type="context",
        priority=5000, parent_component=top,
    )  # fmt: skip
    make_component(
        project, "context", module_name="marshmallow.experimental.context", priority=40,
        parent_component=nested,
    )  # fmt: skip
    return top, nested


def spawned_names(scope, session: Session) -> list[str]:
    services.spawn_child_sessions(scope=scope, session_id=session.pk)
    return [c.component.module_name for c in selectors.spawned_children(session=session)]


def test_a_contexts_spawn_leaves_its_nested_context_to_a_run_of_its_own(scope, marshmallow):
    top, nested = marshmallow

    # Priority 5000 would put the nested context first: it is not a child at all.
    assert spawned_names(scope, make_context_session(scope, top)) == [
        "marshmallow.fields",
        "marshmallow.schema",
    ]
    assert spawned_names(scope, make_context_session(scope, nested)) == [
        "marshmallow.experimental.context"
    ]


def test_a_nested_context_is_never_missing_from_its_parents_run(scope, marshmallow):
    top, _ = marshmallow
    session = make_context_session(scope, top)
    services.spawn_child_sessions(scope=scope, session_id=session.pk)
    Session.objects.filter(parent_session=session).update(status=SessionStatus.COMPLETE)

    check = services.check_child_sessions(scope=scope, session_id=session.pk)
    missing = services.spawn_missing_child_sessions(scope=scope, session_id=session.pk)

    assert check.status == "ok", check.error_message
    assert missing.metadata["created_session_ids"] == []
    assert len(missing.metadata["child_session_ids"]) == 2


def test_a_context_whose_only_children_are_contexts_has_nothing_to_spawn(scope, project):
    outer = make_component(project, "outer", module_name="outer", type="context")
    make_component(project, "inner", module_name="outer.inner", type="context",
                   parent_component=outer)  # fmt: skip

    with pytest.raises(StepError) as error:
        services.spawn_child_sessions(scope=scope, session_id=make_context_session(scope, outer).pk)

    assert str(error.value) == "No child components found for context"
