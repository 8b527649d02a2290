import pytest

from tests.admin.conftest import staff, staff_client, superuser_client  # noqa: F401
from tests.operator.runs import build_known_run


@pytest.fixture
def known_run(scope, context_session):
    return build_known_run(scope, context_session)


def run_url(session) -> str:
    return f"/admin/sessions_app/session/{session.pk}/run/"


def live_url(session) -> str:
    return f"/admin/sessions_app/session/{session.pk}/run/live/"
