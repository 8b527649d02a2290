"""Rules defined once in ``core`` and answered the same by every door that reaches them."""

import pytest

from components_app import services as component_services
from core.errors import CANNOT_CHANGE, InvalidInput
from sessions_app import services as session_services
from sessions_app.workflows.types import Result
from tests.api.conftest import client_for
from tests.factories import make_component, make_session


def test_a_session_field_that_cannot_change_is_refused_by_the_service(scope):
    session = make_session(scope)

    with pytest.raises(InvalidInput) as refused:
        session_services.update_session(
            scope=scope, session_id=session.pk, type="Other", project=None, status="complete"
        )

    assert refused.value.errors == {"project": [CANNOT_CHANGE], "type": [CANNOT_CHANGE]}
    session.refresh_from_db()
    assert session.status == "active"


def test_a_component_field_that_cannot_change_is_refused_by_the_service(scope):
    component = make_component(scope.project, "Cart")

    with pytest.raises(InvalidInput) as refused:
        component_services.update_component(
            scope=scope, component_id=component.pk, project=None, name="Basket"
        )

    assert refused.value.errors == {"project": [CANNOT_CHANGE]}
    component.refresh_from_db()
    assert component.name == "Cart"


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("code", 2**31, "Ensure this value is less than or equal to 2147483647."),
        ("duration_ms", -1, "Ensure this value is greater than or equal to 0."),
        ("stdout", "x" * 1_000_001, "Ensure this field has no more than 1000000 characters."),
        ("status", "done", '"done" is not a valid choice.'),
    ],
)
def test_a_result_is_checked_by_the_apis_rules_whoever_reports_it(
    scope, context_session, field, value, message
):
    pending, _ = session_services.next_command(scope=scope, session_id=context_session.pk)
    result = Result(**{"status": "ok", field: value})

    with pytest.raises(InvalidInput) as refused:
        session_services.submit_result(
            scope=scope, session_id=context_session.pk, interaction_id=pending.pk, result=result
        )

    assert refused.value.errors == {field: [message]}
    response = client_for(scope.user).post(
        f"/api/sessions/{context_session.pk}/interactions/{pending.pk}/result/",
        {"status": "ok", field: value},
        format="json",
    )
    assert (response.status_code, response.json()) == (400, {field: [message]})
    pending.refresh_from_db()
    assert pending.is_pending
