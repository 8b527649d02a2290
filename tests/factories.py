"""Small builders for test data. They write through the ORM so a test can also build the
states a service would refuse (a foreign child, a stale row)."""

from __future__ import annotations

import itertools
from typing import Any

from django.contrib.auth import get_user_model

from components_app.models import Component, Project
from core.scope import Scope
from sessions_app.models import Agent, Environment, Session, SessionStatus
from sessions_app.workflows.session_types import (
    COMPONENT_TEST_SESSIONS,
    CONTEXT_TESTING_SESSIONS,
)

_sequence = itertools.count(1)


def make_user(username: str | None = None, **extra: Any):
    return get_user_model().objects.create_user(
        username=username or f"user{next(_sequence)}", password="pw", **extra
    )


def make_project(*members, name: str | None = None) -> Project:
    project = Project.objects.create(name=name or f"Project {next(_sequence)}")
    project.members.add(*members)
    return project


def make_component(project: Project, name: str | None = None, **fields: Any) -> Component:
    name = name or f"Component{next(_sequence)}"
    fields.setdefault("module_name", f"App.{name}.{next(_sequence)}")
    fields.setdefault("type", "module")
    return Component.objects.create(project=project, name=name, **fields)


def make_context(project: Project, children: list[tuple[str, int]]) -> Component:
    """A context component with children given as (name, priority)."""
    context = make_component(project, "Accounts", type="context")
    for name, priority in children:
        make_component(project, name, priority=priority, parent_component=context)
    return context


def add_children_in_bulk(context: Component, size: int, prefix: str = "c") -> None:
    """``size`` module components under ``context`` in one insert: ``C000``, ``C001``, ...
    (``prefix`` upper-cased), module names ``app.c000``, ..."""
    Component.objects.bulk_create(
        Component(
            project=context.project,
            name=f"{prefix.upper()}{index:03d}",
            module_name=f"app.{prefix}{index:03d}",
            type="module",
            parent_component=context,
        )
        for index in range(size)
    )


def make_session(scope: Scope, **fields: Any) -> Session:
    fields.setdefault("type", CONTEXT_TESTING_SESSIONS)
    return Session.objects.create(project=scope.project, user=scope.user, **fields)


def make_context_session(scope: Scope, context: Component, **fields: Any) -> Session:
    fields.setdefault("agent", Agent.CLAUDE_CODE)
    fields.setdefault("environment", Environment.VSCODE)
    return make_session(scope, component=context, **fields)


def make_child(parent: Session, component: Component, **fields: Any) -> Session:
    fields.setdefault("type", COMPONENT_TEST_SESSIONS)
    fields.setdefault("status", SessionStatus.ACTIVE)
    return Session.objects.create(
        project=parent.project,
        user=parent.user,
        parent_session=parent,
        component=component,
        **fields,
    )


def add_finished_step(session: Session, step_name: str, *, cost: Any = None, **fields: Any):
    """A finished step written through the ORM, with its cost (a string or a Decimal) added to
    its session's usage totals and step times, and its project's cost of the day, as
    ``submit_result`` adds them."""
    from decimal import Decimal

    from django.utils import timezone

    from sessions_app import services
    from sessions_app.models import Interaction

    fields.setdefault("command", {"command": "x"})
    fields.setdefault("result", {"status": "ok"})
    fields.setdefault("completed_at", timezone.now())
    step = Interaction.objects.create(
        session=session,
        step_name=step_name,
        cost_usd=None if cost is None else Decimal(cost),
        **fields,
    )
    services.recount_from_steps(Session.objects.filter(pk=session.pk))
    services.recount_daily_costs([session.project_id])
    return step
