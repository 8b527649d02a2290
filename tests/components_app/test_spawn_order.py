"""Spawn order is by priority, then by name compared by code point, on every database."""

from django.db import connection

from components_app import selectors
from components_app.models import Component
from sessions_app import services
from sessions_app.models import Session
from tests.factories import make_component, make_context, make_context_session

NAMES = ["beta", "Émile", "Zeta", "alpha", "Alpha"]


def test_names_of_equal_priority_sort_by_code_point(scope, project):
    context = make_context(project, [(name, 1) for name in NAMES])

    children = selectors.list_child_components(scope=scope, component_id=context.pk)

    assert (
        [c.name for c in children] == sorted(NAMES) == ["Alpha", "Zeta", "alpha", "beta", "Émile"]
    )


def test_every_list_follows_the_same_order(scope, project):
    context = make_context(project, [(name, 1) for name in NAMES])
    make_component(project, "Top", priority=9, parent_component=context)
    session = make_context_session(scope, context)

    command = services.spawn_child_sessions(scope=scope, session_id=session.pk)

    expected = ["Top", *sorted(NAMES)]
    children = Session.objects.filter(parent_session=session).select_related("component")
    by_id = {str(child.pk): child.component.name for child in children}
    names = [by_id[pk] for pk in command.metadata["child_session_ids"]]
    assert names == expected
    listed = Component.objects.filter(parent_component=context)
    assert [c.name for c in listed] == expected


def test_postgresql_orders_names_in_the_c_collation(project):
    sql = str(Component.objects.filter(project=project).query)

    if connection.vendor == "postgresql":
        assert 'COLLATE "C"' in sql
    else:
        assert "COLLATE" not in sql
