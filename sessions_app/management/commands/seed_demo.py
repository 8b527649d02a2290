"""Demo data to look at: a user, a project, a context with five components, a session.

Safe to run any number of times: it finds what it made before instead of making it again,
except the session: it prints one that can still be spawned, new if the last one was used.
"""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction
from rest_framework.authtoken.models import Token

from components_app import selectors as component_selectors
from components_app import services as component_services
from core.scope import Scope
from sessions_app import selectors, services
from sessions_app.models import Agent, Environment
from sessions_app.workflows.session_types import CONTEXT_TESTING_SESSIONS

DEMO_USERNAME = "demo"
DEMO_PASSWORD = "demo"
DEMO_PROJECT = "Demo shop"
CONTEXT = ("Accounts", "Shop.Accounts", "context", "Users, their tokens and sign-up.", 0)
CHILDREN = [
    ("User", "Shop.Accounts.User", "schema", "A customer account with email and password.", 10),
    ("UserToken", "Shop.Accounts.UserToken", "schema", "Session and reset tokens.", 10),
    ("Registration", "Shop.Accounts.Registration", "module", "Sign-up and confirmation.", 5),
    ("PasswordPolicy", "Shop.Accounts.PasswordPolicy", "module", "Password rules.", 3),
    ("AccountNotifier", "Shop.Accounts.AccountNotifier", "module", "Account e-mails.", 0),
]


class Command(BaseCommand):
    help = "Create the demo user, project, context, components and context testing session."

    @transaction.atomic
    def handle(self, *args, **options) -> None:
        user, created = get_user_model().objects.get_or_create(
            username=DEMO_USERNAME,
            defaults={"is_staff": True, "is_superuser": True, "email": "demo@example.com"},
        )
        if created:
            user.set_password(DEMO_PASSWORD)
            user.save()
        token, _ = Token.objects.get_or_create(user=user)

        project = component_selectors.projects_for_user(user).filter(name=DEMO_PROJECT).first()
        if project is None:
            project = component_services.create_project(user=user, name=DEMO_PROJECT)
        scope = Scope(user=user, project=project)

        # By module name, as the bulk import does: a second run finds what the first made.
        rows = [_row(*CONTEXT, parent=None)] + [_row(*c, parent=CONTEXT[1]) for c in CHILDREN]
        context = component_services.bulk_upsert_components(scope=scope, rows=rows).components[0]

        # A session that has spawned or finished cannot be spawned again: the demo hands out
        # one that can, making a new one once the last has been used.
        session = selectors.unspawned_context_session(scope=scope, context=context)
        if session is None:
            session = services.create_session(
                scope=scope,
                type=CONTEXT_TESTING_SESSIONS,
                component=context,
                agent=Agent.CLAUDE_CODE,
                environment=Environment.CLI,
            )

        self.stdout.write(
            f"Demo ready. Log in to /admin/ as {DEMO_USERNAME} / {DEMO_PASSWORD}.\n"
            f"API token for {DEMO_USERNAME}: {token.key}\n"
            f"Project {project.pk}\n"
            f"Not spawned yet: python manage.py spawn_sessions {selectors.short_id(session.pk)}\n"
            f"Run page: /admin/sessions_app/session/{session.pk}/run/\n"
            # Last, and last on its line: scripts and the docs read the id from here.
            f"Context testing session {session.pk}"
        )


def _row(
    name: str, module_name: str, type_: str, description: str, priority: int, *, parent: str | None
) -> dict[str, object]:
    return {
        "module_name": module_name,
        "name": name,
        "type": type_,
        "description": description,
        "priority": priority,
        "parent_module_name": parent,
    }
