"""Demo data to look at: a user, a project, a context with five components, a session.

Safe to run any number of times (``scripts/serve`` runs it at every start): it finds what it
made before instead of making it again, the context testing session too, whatever has become
of it, and says in its first line what it created, if anything.
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
from sessions_app.models import Agent, Environment, Session
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
# The README installs into .venv and never activates it, so a bare `python` is one without
# Django; the hints are printed as they run from the checkout, where scripts/serve runs.
MANAGE_PY = ".venv/bin/python manage.py"
NOTHING_CREATED = "Demo data already there; nothing created."


class Command(BaseCommand):
    help = "Create the demo user, project, context, components and context testing session."

    @transaction.atomic
    def handle(self, *args, **options) -> None:
        created: list[str] = []
        user, new_user = get_user_model().objects.get_or_create(
            username=DEMO_USERNAME,
            defaults={"is_staff": True, "is_superuser": True, "email": "demo@example.com"},
        )
        if new_user:
            user.set_password(DEMO_PASSWORD)
            user.save()
            created.append(f"user {DEMO_USERNAME}")
        token, new_token = Token.objects.get_or_create(user=user)
        if new_token:
            created.append("API token")

        project = component_selectors.projects_for_user(user).filter(name=DEMO_PROJECT).first()
        if project is None:
            project = component_services.create_project(user=user, name=DEMO_PROJECT)
            created.append(f'project "{DEMO_PROJECT}"')
        scope = Scope(user=user, project=project)

        # By module name, as the bulk import does: a second run finds what the first made.
        rows = [_row(*CONTEXT, parent=None)] + [_row(*c, parent=CONTEXT[1]) for c in CHILDREN]
        upserted = component_services.bulk_upsert_components(scope=scope, rows=rows)
        context = upserted.components[0]
        if upserted.created:
            created.append(f"{upserted.created} components")

        # Any session of the context is the demo's, spawned and finished ones too: making a new
        # one whenever the last was used piled one up at every start of scripts/serve.
        unspawned = selectors.unspawned_context_session(scope=scope, context=context)
        session = unspawned or (
            Session.objects.filter(
                project_id=project.pk, type=CONTEXT_TESTING_SESSIONS, component=context
            )
            .order_by("-created_at")
            .first()
        )
        if session is None:
            session = unspawned = services.create_session(
                scope=scope,
                type=CONTEXT_TESTING_SESSIONS,
                component=context,
                agent=Agent.CLAUDE_CODE,
                environment=Environment.CLI,
            )
            created.append("a context testing session")

        short = selectors.short_id(session.pk)
        if session == unspawned:
            hint = f"Not spawned yet: {MANAGE_PY} spawn_sessions {short}"
        else:
            spawned = ", spawned" if session.child_sessions.exists() else ""
            hint = f"Session {session.status}{spawned}: {MANAGE_PY} session_status {short}"
        self.stdout.write(
            (f"Demo data created: {', '.join(created)}.\n" if created else f"{NOTHING_CREATED}\n")
            + f"Log in to /admin/ as {DEMO_USERNAME} / {DEMO_PASSWORD}.\n"
            f"API token for {DEMO_USERNAME}: {token.key}\n"
            f"Project {project.pk}\n"
            f"{hint}\n"
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
