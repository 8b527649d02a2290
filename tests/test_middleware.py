from config.middleware import NUL_IN_QUERY


def test_a_nul_byte_in_an_admin_filter_is_a_400(admin_client):
    response = admin_client.get("/admin/sessions_app/session/?status=a%00")

    assert response.status_code == 400
    assert response.content.decode() == NUL_IN_QUERY


def test_a_nul_byte_in_an_api_filter_is_a_json_400(admin_client):
    response = admin_client.get("/api/sessions/?type=a%00b")

    assert response.status_code == 400
    assert response.json() == {"detail": NUL_IN_QUERY}


def test_ordinary_queries_pass(admin_client):
    assert admin_client.get("/admin/sessions_app/session/?status=active").status_code == 200
