"""The browsable API's login page leads somewhere: without a "next" it lands on the API root,
never on a 404."""

from tests.factories import make_user


def test_logging_in_without_next_lands_on_the_api_root(client, db):
    user = make_user("carol")
    user.set_password("a long enough password")
    user.save()

    page = client.get("/api/auth/login/")
    response = client.post(
        "/api/auth/login/",
        {
            "username": "carol",
            "password": "a long enough password",
            "csrfmiddlewaretoken": page.cookies["csrftoken"].value,
        },
    )

    assert response.status_code == 302
    assert response["Location"] == "/api/"
    assert client.get(response["Location"], HTTP_ACCEPT="text/html").status_code == 200
