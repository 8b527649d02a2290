import pytest

from core.scope import Scope
from tests.factories import make_context, make_context_session, make_project, make_user

# (name, priority): spawn order is priority descending, then name ascending.
CHILDREN = [("Token", 5), ("User", 10), ("Audit", 0), ("Session", 5)]
SPAWN_ORDER = ["User", "Session", "Token", "Audit"]


@pytest.fixture
def user(db):
    return make_user("alice")


@pytest.fixture
def project(user):
    return make_project(user, name="Shop")


@pytest.fixture
def scope(user, project):
    return Scope(user=user, project=project)


@pytest.fixture
def context(project):
    return make_context(project, CHILDREN)


@pytest.fixture
def context_session(scope, context):
    return make_context_session(scope, context)


@pytest.fixture
def other_scope(db):
    stranger = make_user("mallory")
    return Scope(user=stranger, project=make_project(stranger, name="Elsewhere"))


@pytest.fixture(autouse=True)
def _no_throttling(settings):
    """The suite sends many requests from one address and one user: API throttles and the
    admin's login lockout are off, except in the tests that turn them on to prove them
    (tests/hardening/test_throttling.py)."""
    rates = settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": dict.fromkeys(rates),
    }
    settings.AXES_ENABLED = False


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
