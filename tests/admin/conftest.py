import pytest
from django.contrib.auth.models import Permission

from tests.factories import make_user

CHANGELIST = "/admin/sessions_app/session/"


def change_url(session) -> str:
    return f"/admin/sessions_app/session/{session.pk}/change/"


def post_action(client, action: str, *sessions):
    """Run an admin action on the Session list and return its messages as (level, text)."""
    response = client.post(
        CHANGELIST,
        {"action": action, "_selected_action": [str(s.pk) for s in sessions], "index": 0},
        follow=True,
    )
    assert response.status_code == 200
    return [(message.level_tag, message.message) for message in response.context["messages"]]


@pytest.fixture
def staff(user):
    """A staff member who is not a superuser: alice, member of Shop only, with the model
    permissions a team's operator gets."""
    user.is_staff = True
    user.save()
    user.user_permissions.set(
        Permission.objects.filter(
            content_type__app_label__in=["sessions_app", "components_app"],
            codename__regex=r"^(view|change|add)_",
        )
    )
    return user


@pytest.fixture
def staff_client(client, staff):
    client.force_login(staff)
    return client


@pytest.fixture
def superuser_client(client, db):
    client.force_login(make_user("root", is_staff=True, is_superuser=True))
    return client
