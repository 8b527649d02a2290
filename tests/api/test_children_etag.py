"""``GET /api/sessions/{id}/children/`` tells a polling client when nothing has changed."""

from datetime import timedelta

import pytest
from django.utils import timezone

from sessions_app import services
from sessions_app.models import Session


@pytest.fixture
def spawned(scope, context_session):
    services.spawn_child_sessions(scope=scope, session_id=context_session.pk)
    return {c.component.name: c for c in Session.objects.filter(parent_session=context_session)}


def children_url(session) -> str:
    return f"/api/sessions/{session.pk}/children/"


def test_the_listing_carries_an_etag_and_a_matching_request_gets_an_empty_304(
    api, context_session, spawned
):
    first = api.get(children_url(context_session))
    assert first.status_code == 200
    etag = first["ETag"]
    assert etag.startswith('"') and etag.endswith('"')

    again = api.get(children_url(context_session), HTTP_IF_NONE_MATCH=etag)

    assert again.status_code == 304
    assert again.content == b""
    assert again["ETag"] == etag


@pytest.mark.parametrize("header", ['W/"{}"', '"other", "{}"', "*"])
def test_weak_lists_and_star_match_too(api, context_session, spawned, header):
    etag = api.get(children_url(context_session))["ETag"].strip('"')

    response = api.get(children_url(context_session), HTTP_IF_NONE_MATCH=header.format(etag))

    assert response.status_code == 304


def test_a_stale_tag_gets_the_listing(api, context_session, spawned):
    response = api.get(children_url(context_session), HTTP_IF_NONE_MATCH='"not-it"')

    assert response.status_code == 200
    assert response.json()["summary"]["total"] == 4


def test_a_change_through_the_api_changes_the_tag(api, context_session, spawned):
    etag = api.get(children_url(context_session))["ETag"]

    cancelled = api.post(f"/api/sessions/{spawned['Token'].pk}/cancel/")
    assert cancelled.status_code == 200
    response = api.get(children_url(context_session), HTTP_IF_NONE_MATCH=etag)

    assert response.status_code == 200
    assert response["ETag"] != etag
    assert response.json()["summary"]["cancelled"] == 1


def test_a_child_going_stalled_changes_the_tag(api, context_session, spawned):
    soon = timezone.now() + timedelta(seconds=30)
    Session.objects.filter(pk=spawned["User"].pk).update(runner="w-1", leased_until=soon)
    etag = api.get(children_url(context_session))["ETag"]
    Session.objects.filter(pk=spawned["User"].pk).update(
        leased_until=timezone.now() - timedelta(seconds=1)
    )

    response = api.get(children_url(context_session), HTTP_IF_NONE_MATCH=etag)

    assert response.status_code == 200
    assert response.json()["summary"]["stalled"] == 1


def test_a_tag_does_not_open_another_projects_session(stranger_api, api, context_session, spawned):
    etag = api.get(children_url(context_session))["ETag"]

    response = stranger_api.get(children_url(context_session), HTTP_IF_NONE_MATCH=etag)

    assert response.status_code == 404
