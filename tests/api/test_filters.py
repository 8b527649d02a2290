"""The list filters (django-filter FilterSets) answer what the API answered before them: the
same parameters, DRF's texts for a bad value, an empty value refused, the rest ignored."""

import uuid

import pytest

from core.api.filters import EMPTY_FILTER
from sessions_app.api.filters import INVALID_ID_PREFIX
from sessions_app.workflows.session_types import CONTEXT_TESTING_SESSIONS
from tests.factories import make_context_session

UUID = "4b0c2f5e-0000-4000-8000-000000000000"


@pytest.mark.parametrize(
    ("query", "errors"),
    [
        ("project=nope", {"project": ["Must be a valid UUID."]}),
        (f"project=%20{UUID}", {"project": ["Must be a valid UUID."]}),
        ("status=paused", {"status": ['"paused" is not a valid choice.']}),
        ("status=Active", {"status": ['"Active" is not a valid choice.']}),
        ("status=%20", {"status": ['" " is not a valid choice.']}),
        ("type=%20%20", {"type": ["This field may not be blank."]}),
        ("type=" + "x" * 101, {"type": ["Ensure this field has no more than 100 characters."]}),
        ("type=a%00b", {"type": ["Null characters are not allowed."]}),
        (
            "project=1&parent_session=&status=x",
            {
                "project": ["Must be a valid UUID."],
                "parent_session": [EMPTY_FILTER],
                "status": ['"x" is not a valid choice.'],
            },
        ),
        ("status=paused&status=", {"status": [EMPTY_FILTER]}),
    ],
)
def test_a_bad_session_filter_is_a_400_in_drfs_words(api, query, errors):
    response = api.get(f"/api/sessions/?{query}")

    assert (response.status_code, response.json()) == (400, errors)


@pytest.mark.parametrize(
    ("query", "errors"),
    [
        ("parent_component=nope", {"parent_component": ["Must be a valid UUID."]}),
        ("project=", {"project": [EMPTY_FILTER]}),
    ],
)
def test_a_bad_component_filter_is_a_400_in_drfs_words(api, query, errors):
    response = api.get(f"/api/components/?{query}")

    assert (response.status_code, response.json()) == (400, errors)


@pytest.mark.parametrize(
    "query",
    [
        "status=active",
        f"type={CONTEXT_TESTING_SESSIONS}",
        f"type=%20{CONTEXT_TESTING_SESSIONS}%20",
        "status=failed&status=active",
        "unknown=whatever&page=1",
    ],
)
def test_good_session_filters_filter(api, context_session, query):
    response = api.get(f"/api/sessions/?{query}")

    assert response.status_code == 200
    assert [row["id"] for row in response.json()["results"]] == [str(context_session.pk)]


def test_filters_select_by_id(api, context_session, project):
    assert api.get(f"/api/sessions/?project={UUID}").json()["results"] == []
    listed = api.get(f"/api/sessions/?project={project.pk.hex}").json()["results"]
    assert [row["id"] for row in listed] == [str(context_session.pk)]


def test_a_component_filter_filters(api, context):
    listed = api.get(f"/api/components/?parent_component={context.pk}").json()["results"]

    assert len(listed) == 4
    assert {row["parent_component"] for row in listed} == {str(context.pk)}


@pytest.mark.parametrize(
    "path",
    ["/api/sessions/{id}/", "/api/sessions/{id}/interactions/"],
)
def test_one_objects_routes_ignore_the_list_filters(api, context_session, path):
    response = api.get(path.format(id=context_session.pk) + "?status=paused&project=")

    assert response.status_code == 200


def test_the_schema_documents_the_same_parameters(anonymous):
    schema = anonymous.get("/api/schema/?format=json").json()
    parameters = {
        path: {p["name"]: p["schema"] for p in schema["paths"][path]["get"]["parameters"]}
        for path in ("/api/sessions/", "/api/components/", "/api/sessions/{id}/interactions/")
    }

    # A set of values: its order in the schema is drf-spectacular's.
    status = parameters["/api/sessions/"]["status"]
    assert sorted(status.pop("enum")) == ["active", "cancelled", "complete", "failed"]
    page_size = {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100}
    assert parameters["/api/sessions/"] == {
        "page": {"type": "integer"},
        "page_size": page_size,
        "project": {"type": "string", "format": "uuid"},
        "parent_session": {"type": "string", "format": "uuid"},
        "status": {"type": "string", "minLength": 1},
        "type": {"type": "string", "minLength": 1, "maxLength": 100},
        "id_prefix": {"type": "string", "minLength": 4},
    }
    assert set(parameters["/api/components/"]) == {
        "page",
        "page_size",
        "project",
        "parent_component",
    }
    assert set(parameters["/api/sessions/{id}/interactions/"]) == {"id", "page", "page_size"}


TWINS = [
    uuid.UUID("abcd1234-5678-4000-8000-000000000001"),
    uuid.UUID("abcd1234-9999-4000-8000-000000000002"),
]


@pytest.fixture
def twins(scope, context):
    """Two sessions whose short ids are the same, and one that starts otherwise."""
    made = [make_context_session(scope, context, id=pk) for pk in TWINS]
    make_context_session(scope, context, id=uuid.UUID("abce0000-0000-4000-8000-000000000003"))
    return made


def _ids(api, query: str) -> set[str]:
    response = api.get(f"/api/sessions/?{query}")
    assert response.status_code == 200, response.json()
    return {row["id"] for row in response.json()["results"]}


@pytest.mark.parametrize(
    ("prefix", "matches"),
    [
        ("abcd", 2),
        ("abcd1234", 2),  # the short id the admin shows, of both
        ("ABCD1234", 2),
        ("abcd1234-5", 1),
        ("abcd12345", 1),  # hyphens where a UUID has them, or none
        ("abcd1234-5678-4000-8000-00000000000", 1),
        ("abcd9", 0),
    ],
)
def test_the_session_list_filters_by_the_start_of_the_id(api, twins, prefix, matches):
    found = _ids(api, f"id_prefix={prefix}")

    assert len(found) == matches
    assert found <= {str(pk) for pk in TWINS}


def test_an_id_prefix_lists_only_the_callers_sessions(stranger_api, twins):
    assert _ids(stranger_api, "id_prefix=abcd") == set()


@pytest.mark.parametrize(
    "prefix",
    ["abc", "abcz", "abcd1234-5678-4000-8000-000000000001", "../..", "%20abc"],
)
def test_a_value_that_cannot_start_an_id_is_a_400(api, twins, prefix):
    response = api.get(f"/api/sessions/?id_prefix={prefix}")

    assert (response.status_code, response.json()) == (400, {"id_prefix": [INVALID_ID_PREFIX]})


def test_an_empty_id_prefix_is_refused_like_every_filter(api):
    response = api.get("/api/sessions/?id_prefix=")
    assert (response.status_code, response.json()) == (400, {"id_prefix": [EMPTY_FILTER]})


def test_a_null_character_in_an_id_prefix_is_a_400_not_a_500(api):
    response = api.get("/api/sessions/?id_prefix=abcd%00")
    assert response.status_code == 400
    assert INVALID_ID_PREFIX in response.json()["id_prefix"]
