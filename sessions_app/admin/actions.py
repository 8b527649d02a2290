"""The Session list's actions: each a short function over the selected sessions that calls one
service function per session and reports one message per session."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.template.defaultfilters import pluralize

from sessions_app import selectors, services
from sessions_app.models import Session, SessionStatus
from sessions_app.workflows.types import Command

if TYPE_CHECKING:
    from sessions_app.admin.sessions import SessionAdmin


@admin.action(description="Spawn child sessions", permissions=["change"])
def spawn_child_sessions(modeladmin: SessionAdmin, request: HttpRequest, queryset: QuerySet):
    for session in queryset.select_related("project", "component"):
        command = modeladmin.call(request, session, services.spawn_child_sessions)
        if command is None:
            continue
        count = len(command.metadata["child_session_ids"])
        if command.metadata["already_spawned"]:
            text = f"{count} child session{pluralize(count)} already existed; none were added."
        else:
            text = f"spawned {count} child session{pluralize(count)}."
        modeladmin.report(request, session, text)
        _warn_failed_components(modeladmin, request, session, command)


@admin.action(description="Spawn missing child sessions", permissions=["change"])
def spawn_missing_child_sessions(
    modeladmin: SessionAdmin, request: HttpRequest, queryset: QuerySet
):
    for session in queryset.select_related("project", "component"):
        command = modeladmin.call(request, session, services.spawn_missing_child_sessions)
        if command is None:
            continue
        created = len(command.metadata["created_session_ids"])
        total = len(command.metadata["child_session_ids"])
        if created:
            text = f"spawned {created} missing child session{pluralize(created)} ({total} in all)."
        else:
            text = "no child session was added."
        modeladmin.report(request, session, text)
        _warn_failed_components(modeladmin, request, session, command)


def _warn_failed_components(
    modeladmin: SessionAdmin, request: HttpRequest, session: Session, command: Command
) -> None:
    if (failed := services.failed_components_text(command)) is not None:
        modeladmin.report(request, session, f"{failed}.", messages.WARNING)


@admin.action(description="Retry selected sessions", permissions=["change"])
def retry_sessions(modeladmin: SessionAdmin, request: HttpRequest, queryset: QuerySet):
    for session in queryset.select_related("project", "component"):
        retried = modeladmin.call(request, session, services.retry_session)
        if retried is not None:
            modeladmin.report(request, session, f"retried (attempt {retried.attempt}).")


@admin.action(description="Retry failed and cancelled children", permissions=["change"])
def retry_failed_children(modeladmin: SessionAdmin, request: HttpRequest, queryset: QuerySet):
    for session in queryset.select_related("project", "component"):
        children = modeladmin.call(request, session, services.retry_child_sessions)
        if children is None:
            continue
        if children:
            names = ", ".join(selectors.display_name(child) for child in children)
            text = f"retried {len(children)} child session{pluralize(len(children))}: {names}."
        else:
            text = "no child session was failed or cancelled."
        modeladmin.report(request, session, text)


@admin.action(description="Cancel selected sessions", permissions=["change"])
def cancel_sessions(modeladmin: SessionAdmin, request: HttpRequest, queryset: QuerySet):
    cancelled = already = 0
    for session in queryset.select_related("project", "component"):
        was_cancelled = session.status == SessionStatus.CANCELLED
        if modeladmin.call(request, session, services.cancel_session) is None:
            continue
        if was_cancelled:
            already += 1
        else:
            cancelled += 1
    if cancelled:
        modeladmin.message_user(
            request,
            f"Cancelled {cancelled} session{pluralize(cancelled)} "
            "and their children that were still active.",
            messages.SUCCESS,
        )
    if already:
        modeladmin.message_user(
            request,
            f"{already} session{pluralize(already)} {pluralize(already, 'was,were')} "
            "already cancelled.",
            messages.INFO,
        )


@admin.action(description="Release leases", permissions=["change"])
def release_leases(modeladmin: SessionAdmin, request: HttpRequest, queryset: QuerySet):
    """Free the sessions of a runner that died, at once: whoever holds a lease loses it."""
    for session in queryset.select_related("project", "component"):
        holder = session.runner
        released = modeladmin.call(request, session, services.release, force=True)
        if released is None:
            continue
        text = f"released the lease of {holder}." if holder else "held no lease."
        modeladmin.report(request, session, text)
