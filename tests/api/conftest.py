"""Clients for the API tests: the caller (alice, by token), a stranger, nobody."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager

import pytest
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from components_app.models import Component, Project
from sessions_app.models import Interaction, Session


def client_for(user) -> APIClient:
    client = APIClient()
    token, _ = Token.objects.get_or_create(user=user)
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client


@pytest.fixture
def api(user) -> APIClient:
    return client_for(user)


@pytest.fixture
def stranger_api(other_scope) -> APIClient:
    return client_for(other_scope.user)


@pytest.fixture
def anonymous(db) -> APIClient:
    return APIClient()


def db_snapshot() -> dict[str, list[str]]:
    """Every row the API can write, to compare before and after a rejected request."""
    models = [Project, Project.members.through, Component, Session, Interaction]
    return {
        model._meta.label: [repr(row) for row in model.objects.order_by("pk").values_list()]
        for model in models
    }


@pytest.fixture
def unchanged_db() -> Callable[[], AbstractContextManager[None]]:
    """``with unchanged_db(): ...`` fails if the block wrote anything."""

    @contextmanager
    def check() -> Iterator[None]:
        before = db_snapshot()
        yield
        assert db_snapshot() == before

    return check
