"""The site around the admin: its name, its front page, the API's root and schema file."""

import logging
import re

import pytest
from django.conf import settings


def test_the_admin_is_titled_after_the_product(staff_client):
    html = staff_client.get("/admin/").content.decode()

    assert "<title>Administration | spawnctl</title>" in html
    assert '<div id="site-name"><a href="/">spawnctl</a></div>' in html
    assert "Django administration" not in html
    # "View site" leads to the dashboard, which is a page.
    assert '<a href="/">View site</a>' in html


def test_the_front_page_is_the_dashboard(staff_client):
    response = staff_client.get("/")

    assert response.status_code == 200
    assert "<title>Dashboard | spawnctl</title>" in response.content.decode()


@pytest.mark.django_db
def test_the_front_page_asks_a_stranger_to_log_in(client):
    response = client.get("/")

    assert response.status_code == 302
    assert response["Location"] == "/admin/login/?next=/"
    assert client.get(response["Location"]).status_code == 200


def test_a_staff_member_without_session_rights_is_refused_not_shown_a_404(client, user):
    user.is_staff = True
    user.save()
    client.force_login(user)

    assert client.get("/").status_code == 403


@pytest.mark.django_db
def test_the_api_root_lists_the_collections(client):
    response = client.get("/api/", HTTP_ACCEPT="application/json")

    assert response.status_code == 200
    links = response.json()
    assert links["sessions"] == "http://testserver/api/sessions/"
    assert {"projects", "components", "sessions", "schema", "docs"} <= set(links)


@pytest.mark.django_db
def test_the_api_root_is_browsable(client):
    response = client.get("/api/", HTTP_ACCEPT="text/html")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    assert "/api/sessions/" in response.content.decode()


@pytest.mark.django_db
def test_the_schema_downloads_under_the_products_name(client):
    response = client.get("/api/schema/")

    assert response.status_code == 200
    assert response["Content-Disposition"] == 'inline; filename="spawnctl.yaml"'
    assert settings.SPECTACULAR_SETTINGS["TITLE"] == "spawnctl"


def _handlers_reached(name: str) -> list[logging.Handler]:
    """Every handler a record logged on ``name`` reaches, as logging walks up the tree."""
    logger: logging.Logger | None = logging.getLogger(name)
    reached = []
    while logger is not None:
        reached.extend(h for h in logger.handlers if not isinstance(h, logging.NullHandler))
        if not logger.propagate:
            break
        logger = logger.parent
    return reached


@pytest.mark.parametrize("name", ["django.utils.autoreload", "django.request", "django.server"])
def test_each_django_log_line_is_printed_once(name):
    # The dev server's "Watching for file changes" line came out twice: once from Django's
    # handler, once from the root's. Exactly one stream handler reaches each record now.
    # (pytest adds capturing handlers of its own; only plain stream handlers print.)
    streams = [h for h in _handlers_reached(name) if type(h) is logging.StreamHandler]
    assert len(streams) == 1, streams


@pytest.mark.django_db
def test_the_favicon_is_the_products_own_and_no_404(client):
    response = client.get("/favicon.ico")

    assert response.status_code == 200
    assert response["Content-Type"] == "image/svg+xml"
    assert response.content.startswith(b"<svg")


@pytest.mark.django_db
def test_the_api_root_says_what_the_api_is(client):
    html = client.get("/api/", HTTP_ACCEPT="text/html").content.decode()

    assert "spawnctl API" in html
    assert "The spawnctl REST API: projects, the components of their codebases" in html
    assert "DefaultRouter" not in html
    assert "Django REST framework" not in html
    assert "<title>spawnctl API \u2013 spawnctl</title>" in html


def test_the_admin_index_lists_sessions_and_projects_first(superuser_client):
    html = superuser_client.get("/admin/").content.decode()

    sessions, projects, accounts = (
        html.index(f'class="app-{app} module') for app in ("sessions_app", "components_app", "auth")
    )
    assert sessions < projects < accounts


def test_a_projects_members_are_named_by_their_user(superuser_client, project, user):
    html = superuser_client.get(f"/admin/components_app/project/{project.pk}/change/").content
    html = html.decode()

    assert "Project_members object" not in html
    original = re.search(r'<td class="original">\s*<p>(.*?)</p>', html, re.S).group(1)
    assert original.split() == [user.username]
