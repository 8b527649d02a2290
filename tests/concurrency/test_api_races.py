"""The same races through the REST API: simultaneous requests for one session answer as the
contract says (one 201 then 200s, the same children for every spawn, one 200 and 409s for
reports), never a 500. On PostgreSQL, for the reasons given in test_postgres_races.py."""

from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from sessions_app import services
from tests.concurrency import races

ROUNDS = 3

pytestmark = races.POSTGRES_ONLY


def post_together(scope, path: str, body: dict | None = None) -> list[tuple[int, object]]:
    """Every client POSTs ``path`` at the same moment, each with its own APIClient."""
    token, _ = Token.objects.get_or_create(user=scope.user)

    def post(_: int) -> tuple[int, object]:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
        response = client.post(path, body, format="json")
        return response.status_code, response.json()

    outcomes = races.run_together(races.CLIENTS, post)
    assert races.errors_of(outcomes) == []
    return [outcome.value for outcome in outcomes]


def test_simultaneous_spawn_requests_answer_the_same_children():
    for _ in range(ROUNDS):
        scope, session = races.fresh_context_session()

        answers = post_together(scope, f"/api/sessions/{session.pk}/spawn/")

        expected = races.assert_one_child_per_component(session)
        assert [status for status, _ in answers] == [200] * races.CLIENTS
        assert [body["metadata"]["child_session_ids"] for _, body in answers] == [
            expected
        ] * races.CLIENTS


def test_simultaneous_next_command_requests_create_one_interaction():
    for _ in range(ROUNDS):
        scope, session = races.fresh_context_session()

        answers = post_together(scope, f"/api/sessions/{session.pk}/next-command/")

        assert sorted(status for status, _ in answers) == [200] * (races.CLIENTS - 1) + [201]
        assert len({body["id"] for _, body in answers}) == 1
        assert session.interactions.count() == 1


def test_simultaneous_reports_apply_once_and_the_rest_are_409():
    for _ in range(ROUNDS):
        scope, session = races.fresh_context_session()
        interaction, _ = services.next_command(scope=scope, session_id=session.pk)

        answers = post_together(
            scope,
            f"/api/sessions/{session.pk}/interactions/{interaction.pk}/result/",
            {"status": "ok", "code": 0},
        )

        statuses = sorted(status for status, _ in answers)
        assert statuses == [200] + [409] * (races.CLIENTS - 1)
        refused = [body for status, body in answers if status == 409]
        assert refused == [{"detail": services.RESULT_ALREADY_REPORTED}] * (races.CLIENTS - 1)
        interaction.refresh_from_db()
        assert interaction.result["status"] == "ok"
