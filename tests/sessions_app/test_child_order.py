"""The kept order of a context's children (``ChildOrder``): written by the spawn step and the
result check, forgotten by the triggers on every write that could move a child, whatever
wrote it; the session's JSON lists the children in their live spawn order either way.

The race between a keeper and a concurrent change is in tests/concurrency (``child_order_race``,
on PostgreSQL and on a SQLite file)."""

import uuid

import pytest
from django.db import connection

from components_app.models import Component
from sessions_app import selectors, services
from sessions_app.models import ChildOrder, Session
from sessions_app.workflows.types import Result
from tests.api.conftest import client_for
from tests.conftest import SPAWN_ORDER
from tests.factories import make_child, make_component, make_context_session
from tests.sessions_app.test_query_counts import wide_context
from tests.sessions_app.workflow_driver import step_once

# The result check's answer through the API, its children's order kept: the token, the
# session, the request's savepoint, the service's reads and writes (test_query_counts.py
# pins those), the session read back with its kept order and its run's totals.
ANSWER_QUERIES = 14

TRIGGERS = {
    "child_order_on_insert",
    "child_order_on_update",
    "child_order_on_delete",
    "child_order_on_component",
}


def live_order(session: Session) -> list[str]:
    """The spawn order computed in Python from the rows: priority descending, then name by
    code point, children without a component last, then creation time and id."""
    children = list(Session.objects.filter(parent_session=session).select_related("component"))

    def key(child: Session) -> tuple:
        component = child.component
        if component is None:
            return (1, 0, "", child.created_at, str(child.pk))
        return (0, -component.priority, component.name, child.created_at, str(child.pk))

    return [str(child.pk) for child in sorted(children, key=key)]


def kept(session: Session) -> list[str] | None:
    text = ChildOrder.objects.filter(parent_id=session.pk).values_list("ids", flat=True).first()
    return None if text is None else (text.split(",") if text else [])


def rendered(api, session: Session) -> list[str]:
    response = api.get(f"/api/sessions/{session.pk}/")
    assert response.status_code == 200
    return response.json()["child_session_ids"]


@pytest.fixture
def api(user):
    return client_for(user)


@pytest.fixture
def spawned(scope, context_session):
    services.spawn_child_sessions(scope=scope, session_id=context_session.pk)
    return context_session


def children_by_name(session: Session) -> dict[str, Session]:
    return {
        child.component.name: child
        for child in Session.objects.filter(parent_session=session).select_related("component")
    }


def test_the_tables_have_the_child_order_triggers(db):
    # A later migration that rebuilds the session or component table on SQLite drops its
    # triggers with it; this is the test that says so.
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")
        else:
            cursor.execute("SELECT tgname FROM pg_trigger")
        names = {row[0] for row in cursor.fetchall()}
    assert names >= TRIGGERS


def test_a_spawn_keeps_its_childrens_order(api, spawned):
    order = live_order(spawned)
    names = [children_by_name(spawned)[name].pk for name in SPAWN_ORDER]
    assert order == [str(pk) for pk in names]
    assert kept(spawned) == order
    assert rendered(api, spawned) == order


def test_children_that_tie_on_priority_and_name_are_kept_in_creation_order(scope, project):
    context = make_component(project, "Ctx", type="context")
    for index in range(6):
        make_component(
            project, "Same", priority=1, parent_component=context, module_name=f"app.same{index}"
        )
    session = make_context_session(scope, context)
    services.spawn_child_sessions(scope=scope, session_id=session.pk)
    assert kept(session) == live_order(session)


@pytest.mark.parametrize(
    ("name", "change"),
    [
        ("Audit", lambda c: Component.objects.filter(pk=c.pk).update(priority=99)),
        (
            "Audit",
            lambda c: Component.objects.bulk_update(
                [Component(pk=c.pk, priority=99)], ["priority"]
            ),
        ),
        ("Session", lambda c: setattr(c, "name", "Zzz") or c.save()),
        (
            "Token",
            lambda c: _raw(
                "UPDATE components_app_component SET name = %s WHERE id = %s", ["Aaa", c.pk]
            ),
        ),
    ],
    ids=["update", "bulk_update", "save_name", "raw_sql_name"],
)
def test_a_component_given_another_priority_or_name_forgets_the_order(api, spawned, name, change):
    before = live_order(spawned)
    change(children_by_name(spawned)[name].component)

    assert kept(spawned) is None
    # Read live meanwhile: the new order, not the one the spawn kept.
    assert rendered(api, spawned) == live_order(spawned) != before


def _raw(sql: str, params: list) -> None:
    if connection.vendor == "sqlite":
        params = [p.hex if isinstance(p, uuid.UUID) else p for p in params]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


def test_writes_that_cannot_move_a_child_keep_the_order(spawned):
    audit = children_by_name(spawned)["Audit"]
    component = audit.component
    component.save()  # every column written, none changed
    Component.objects.filter(pk=component.pk).update(description="changed", excluded=True)
    audit.status = "complete"
    audit.save()
    Session.objects.filter(parent_session=spawned).update(attempt=2, external_conversation_id="x")
    spawned.save()

    assert kept(spawned) == live_order(spawned)


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(
            lambda parent, child, other: make_child(
                parent, make_component(parent.project, "Aardvark", priority=50)
            ),
            id="child_inserted",
        ),
        pytest.param(lambda parent, child, other: child.delete(), id="child_deleted"),
        pytest.param(lambda parent, child, other: child.component.delete(), id="component_deleted"),
        pytest.param(
            lambda parent, child, other: Session.objects.filter(pk=child.pk).update(
                parent_session=other
            ),
            id="child_moved",
        ),
        pytest.param(
            lambda parent, child, other: Session.objects.filter(pk=child.pk).update(component=None),
            id="component_cleared",
        ),
    ],
)
def test_a_child_inserted_deleted_or_moved_forgets_the_order(api, scope, spawned, context, change):
    other = make_context_session(scope, context)
    ChildOrder.objects.create(parent=other, ids="")
    change(spawned, children_by_name(spawned)["Session"], other)

    assert kept(spawned) is None
    assert rendered(api, spawned) == live_order(spawned)
    if kept(other) is not None:
        assert kept(other) == live_order(other)


def test_the_result_check_keeps_the_order_again(api, scope, spawned):
    Component.objects.filter(pk=children_by_name(spawned)["Token"].component_id).update(
        priority=100
    )
    assert kept(spawned) is None
    step_once(scope, spawned)  # Initialize
    interaction, _ = services.next_command(scope=scope, session_id=spawned.pk)
    assert interaction.step_name == "SpawnComponentTestingSessions"
    # Its command is handed out with the order kept; forgotten again before the result.
    Component.objects.filter(pk=children_by_name(spawned)["Token"].component_id).update(
        priority=101
    )
    assert kept(spawned) is None

    response = api.post(
        f"/api/sessions/{spawned.pk}/interactions/{interaction.pk}/result/",
        {"status": "ok"},
        format="json",
    )

    assert response.status_code == 200
    order = live_order(spawned)
    assert kept(spawned) == order
    assert response.json()["session"]["child_session_ids"] == order
    assert [children_by_name(spawned)["Token"].pk.hex] == [uuid.UUID(order[0]).hex]


def test_the_result_check_on_its_own_reads_live_and_writes_nothing(scope, spawned):
    # check_child_sessions takes no lock: it must not keep what a concurrent change could
    # make stale.
    ChildOrder.objects.filter(parent_id=spawned.pk).delete()
    services.check_child_sessions(scope=scope, session_id=spawned.pk)
    assert kept(spawned) is None


def test_spawn_missing_keeps_the_order_with_the_new_children_in_place(api, scope, spawned):
    context = spawned.component
    make_component(scope.project, "Middle", priority=4, parent_component=context)
    assert kept(spawned) == live_order(spawned)  # a component alone moves no child

    command = services.spawn_missing_child_sessions(scope=scope, session_id=spawned.pk)

    order = live_order(spawned)
    assert command.metadata["child_session_ids"] == order
    assert kept(spawned) == order
    assert rendered(api, spawned) == order


def test_a_session_list_renders_kept_and_live_orders_alike(api, scope, spawned, context):
    forgotten = make_context_session(scope, context)
    for name in ("User", "Audit"):
        make_child(forgotten, children_by_name(spawned)[name].component)
    assert kept(forgotten) is None

    response = api.get("/api/sessions/", {"type": "ContextTestingSessions"})

    assert response.status_code == 200
    listed = {row["id"]: row["child_session_ids"] for row in response.json()["results"]}
    assert listed[str(spawned.pk)] == live_order(spawned)
    assert listed[str(forgotten.pk)] == live_order(forgotten)


def test_the_spawn_steps_next_command_keeps_a_forgotten_order(scope, spawned):
    step_once(scope, spawned)  # the spawn step's pending command answered
    ChildOrder.objects.filter(parent_id=spawned.pk).delete()
    interaction, _ = services.next_command(scope=scope, session_id=spawned.pk)
    assert interaction.step_name == "SpawnComponentTestingSessions"
    assert kept(spawned) == live_order(spawned)


def test_a_kept_order_is_applied_results_unchanged(scope, spawned):
    # What the answer says equals what a result sent through the service sees.
    step_once(scope, spawned)  # Initialize
    interaction, _ = services.next_command(scope=scope, session_id=spawned.pk)
    _, session = services.submit_result(
        scope=scope,
        session_id=spawned.pk,
        interaction_id=interaction.pk,
        result=Result(status="ok"),
    )
    assert selectors.child_ids_in_spawn_order(
        selectors.with_child_ids(Session.objects.filter(pk=session.pk)).get()
    ) == live_order(spawned)


@pytest.mark.parametrize("size", [3, 30])
@pytest.mark.parametrize("forgotten", [False, True], ids=["kept", "forgotten"])
def test_the_result_checks_answer_costs_the_same_queries_at_3_and_30_children(
    user, scope, size, forgotten, django_assert_num_queries
):
    session = wide_context(scope, size)
    step_once(scope, session)
    spawn, _ = services.next_command(scope=scope, session_id=session.pk)
    Session.objects.filter(parent_session=session).update(status="complete")
    if forgotten:
        ChildOrder.objects.filter(parent_id=session.pk).delete()
    api = client_for(user)

    # Forgotten: the ids read live once, and kept (two more queries); the answer then reads
    # the kept list with the session, as it does when it was kept all along.
    with django_assert_num_queries(ANSWER_QUERIES + (2 if forgotten else 0)):
        response = api.post(
            f"/api/sessions/{session.pk}/interactions/{spawn.pk}/result/",
            {"status": "ok"},
            format="json",
        )

    assert response.status_code == 200
    assert response.json()["interaction"]["result"]["status"] == "ok"
    assert response.json()["session"]["child_session_ids"] == live_order(session)
    assert kept(session) == live_order(session)
