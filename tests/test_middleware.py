from config.middleware import NUL_IN_QUERY


def test_a_nul_byte_in_an_admin_filter_is_a_400(admin_client):
    response = admin_client.get("/admin/sessions_app/session/?status=a%00")

    assert response.status_code == 400
    assert response.content.decode() == NUL_IN_QUERY


def test_the_api_answers_a_nul_byte_in_a_filter_with_its_own_field_error(admin_client):
    response = admin_client.get("/api/sessions/?type=a%00b")

    assert response.status_code == 400
    assert list(response.json()) == ["type"]


def test_ordinary_queries_pass(admin_client):
    assert admin_client.get("/admin/sessions_app/session/?status=active").status_code == 200
