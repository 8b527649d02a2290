from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.views.main import ChangeList
from django.db.models import QuerySet
from django.http import HttpRequest
from django.template.defaultfilters import pluralize
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString

from components_app import selectors as component_selectors
from components_app.admin import ProjectScopedAdmin
from core.errors import ServiceError
from core.scope import Scope
from sessions_app import selectors, services
from sessions_app.models import Interaction, Session, SessionStatus

T = TypeVar("T")


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
        _warn_failed_components(modeladmin, request, session, command.metadata)


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
        _warn_failed_components(modeladmin, request, session, command.metadata)


def _warn_failed_components(
    modeladmin: SessionAdmin, request: HttpRequest, session: Session, metadata: dict
) -> None:
    if metadata["failed_components"]:
        modeladmin.report(
            request,
            session,
            f"{selectors.failed_components_text(metadata['failed_components'])}.",
            messages.WARNING,
        )


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


class SessionForm(forms.ModelForm):
    """The change form refuses the status changes the service refuses, with its text."""

    class Meta:
        model = Session
        fields = ["status"]  # the admin's fieldsets decide the rest

    def clean_status(self) -> str:
        new_status = self.cleaned_data["status"]
        if not self.instance._state.adding:
            try:
                services.check_status_change(session=self.instance, new_status=new_status)
            except ServiceError as error:
                raise forms.ValidationError(f"{error.message}. {RETRY_HINT}") from None
        return new_status


RETRY_HINT = "To run a failed or cancelled session again, use the “Retry selected sessions” action."


class SessionChangeList(ChangeList):
    """The changelist's rows carry their children's counts: one query for the whole page."""

    def get_queryset(self, request: HttpRequest, exclude_parameters=None) -> QuerySet:
        return selectors.with_children_progress(super().get_queryset(request, exclude_parameters))


@admin.register(Session)
class SessionAdmin(ProjectScopedAdmin):
    list_display = [
        "short_id",
        "type",
        "status",
        "children_progress",
        "component_name",
        "parent",
        "execution_mode",
        "project",
    ]
    list_select_related = ["component", "project", "parent_session__component"]
    list_filter = ["status", "type", ("project", admin.RelatedOnlyFieldListFilter)]
    search_fields = [
        "type",
        "component__name",
        "component__module_name",
        "project__name",
        "external_conversation_id",
    ]
    search_help_text = "Type, component, project, conversation id, or a session's full id."
    actions = [
        spawn_child_sessions,
        spawn_missing_child_sessions,
        retry_sessions,
        retry_failed_children,
        cancel_sessions,
    ]
    form = SessionForm
    readonly_fields = [
        "id",
        "user",
        "attempt",
        "runner",
        "leased_until",
        "children",
        "interactions",
        "created_at",
        "updated_at",
    ]
    fieldsets = [
        (
            None,
            {
                "fields": [
                    "id",
                    "project",
                    "user",
                    "type",
                    "component",
                    "parent_session",
                    "status",
                    "attempt",
                    "execution_mode",
                    "agent",
                    "environment",
                    "max_parallel_children",
                    "external_conversation_id",
                    "state",
                    "created_at",
                    "updated_at",
                ]
            },
        ),
        ("Lease", {"fields": ["runner", "leased_until"]}),
        ("Children, in spawn order", {"fields": ["children"]}),
        ("Interactions, newest first", {"fields": ["interactions"]}),
    ]
    scoped_choices = {
        "project": component_selectors.projects_for_user,
        "component": component_selectors.components_for_user,
        "parent_session": selectors.sessions_for_user,
    }

    def scope_for(self, request: HttpRequest, session: Session) -> Scope:
        return Scope(user=request.user, project=session.project)

    def call(self, request: HttpRequest, session: Session, service: Callable[..., T]) -> T | None:
        """``service`` on one selected session, as the clicking user; its error, if any,
        becomes an error message naming the session and the result is None."""
        try:
            return service(scope=self.scope_for(request, session), session_id=session.pk)
        except ServiceError as error:
            self.report(request, session, error.message, messages.ERROR)
            return None

    def report(
        self, request: HttpRequest, session: Session, text: str, level: int = messages.SUCCESS
    ) -> None:
        self.message_user(request, f"{selectors.display_name(session)}: {text}", level)

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        return SessionChangeList

    def get_readonly_fields(self, request: HttpRequest, obj: Session | None = None) -> list[str]:
        if obj is None:
            return ["id", "user", "created_at", "updated_at"]
        # What a session is and where it hangs in the tree is fixed once it exists, as the
        # service's update allows only status, state, execution mode and conversation id.
        return [*self.readonly_fields, "project", "type", "component", "parent_session"]

    def get_fieldsets(self, request: HttpRequest, obj: Session | None = None):
        if obj is not None:
            return self.fieldsets
        # A new session starts on its first attempt, with no lease.
        name, options = self.fieldsets[0]
        return [(name, {**options, "fields": [f for f in options["fields"] if f != "attempt"]})]

    def formfield_for_foreignkey(self, db_field, request: HttpRequest, **kwargs: Any):
        formfield = super().formfield_for_foreignkey(db_field, request, **kwargs)
        if db_field.name == "parent_session" and formfield is not None:
            formfield.queryset = formfield.queryset.select_related("component")
        return formfield

    def save_model(self, request: HttpRequest, obj: Session, form, change: bool) -> None:
        if not change:
            obj.user = request.user
            super().save_model(request, obj, form, change)
            return
        # The other fields save as the form has them; a status change goes through the
        # service (SessionForm already checked it), which cancels running children and drops
        # the lease of a session that ends, as the API does.
        new_status = obj.status
        obj.status = form.initial["status"]
        super().save_model(request, obj, form, change)
        if new_status != obj.status:
            changed = self.call(
                request,
                obj,
                lambda **ids: services.update_session(**ids, status=new_status),
            )
            if changed is not None:
                obj.status = changed.status

    def get_search_results(self, request: HttpRequest, queryset: QuerySet, search_term: str):
        try:
            session_id = uuid.UUID(search_term.strip())
        except ValueError:
            return super().get_search_results(request, queryset, search_term)
        return queryset.filter(pk=session_id), False

    @admin.display(description="session", ordering="created_at")
    def short_id(self, session: Session) -> str:
        return str(session.pk)[:8]

    @admin.display(description="component", ordering="component__name")
    def component_name(self, session: Session) -> SafeString | None:
        if session.component is None:
            return None
        return format_html(
            '<span title="{}">{}</span>', session.component.module_name, session.component.name
        )

    @admin.display(description="parent", ordering="parent_session__created_at")
    def parent(self, session: Session) -> SafeString | None:
        if session.parent_session is None:
            return None
        return format_html(
            '<a href="{}">{} ({})</a>',
            reverse("admin:sessions_app_session_change", args=[session.parent_session_id]),
            selectors.display_name(session.parent_session),
            str(session.parent_session_id)[:8],
        )

    @admin.display(description="children")
    def children_progress(self, session: Session) -> SafeString | str:
        summary = selectors.children_progress(session)
        if not summary.total:
            return self.get_empty_value_display()
        return render_to_string(
            "admin/sessions_app/session/children_progress.html",
            {"summary": summary, "widths": _widths(summary)},
        )

    @admin.display(description="children")
    def children(self, session: Session) -> SafeString:
        children = list(selectors.child_sessions(session=session))
        rows = [
            {
                "session": child,
                "name": selectors.display_name(child),
                "url": reverse("admin:sessions_app_session_change", args=[child.pk]),
                "reason": selectors.failure_reason(child)
                if child.status == SessionStatus.FAILED
                else "",
            }
            for child in children
        ]
        return render_to_string(
            "admin/sessions_app/session/children.html",
            {"rows": rows, "summary": selectors.summarize(children)},
        )

    @admin.display(description="interactions")
    def interactions(self, session: Session) -> SafeString:
        rows = [
            {
                "interaction": interaction,
                "command": json.dumps(interaction.command, indent=2, sort_keys=True),
                "result": json.dumps(interaction.result, indent=2, sort_keys=True),
            }
            for interaction in selectors.interactions_for_session(session=session)
        ]
        return render_to_string("admin/sessions_app/session/interactions.html", {"rows": rows})


def _widths(summary: selectors.ChildrenSummary) -> dict[str, float]:
    return {
        status: round(100 * getattr(summary, status) / summary.total, 1)
        for status in ("complete", "failed", "cancelled")
    }


@admin.register(Interaction)
class InteractionAdmin(ProjectScopedAdmin):
    """History, not something to edit: results arrive through the service."""

    project_path = "session__project"
    list_display = ["step_name", "session", "result_status", "created_at", "completed_at"]
    list_select_related = ["session__component"]
    list_filter = ["step_name"]
    search_fields = ["step_name", "session__component__name"]
    fields = ["id", "session", "step_name", "command", "result", "created_at", "completed_at"]
    readonly_fields = fields
    ordering = ["-created_at"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Interaction | None = None) -> bool:
        return False

    @admin.display(description="result")
    def result_status(self, interaction: Interaction) -> str:
        if interaction.result is None:
            return "pending"
        return interaction.result.get("status", "")
