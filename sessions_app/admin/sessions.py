from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.views.main import ChangeList
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Exists, F, OuterRef, Q, QuerySet
from django.db.models.functions import Coalesce
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseNotAllowed
from django.shortcuts import redirect
from django.template.defaultfilters import pluralize
from django.template.loader import render_to_string
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe

from components_app import selectors as component_selectors
from components_app.admin import ProjectScopedAdmin
from core.errors import ServiceError
from core.scope import Scope
from core.text import printable
from sessions_app import selectors, services
from sessions_app.admin import actions
from sessions_app.models import Interaction, Session, client_state, stalled_at
from sessions_app.operator import views as operator_views
from sessions_app.operator.formatting import (
    badge,
    clock,
    cost_text,
    duration_text,
    progress_widths,
)
from sessions_app.workflows.registry import session_types
from sessions_app.workflows.session_types import COMPONENT_TEST_SESSIONS, CONTEXT_TESTING_SESSIONS

T = TypeVar("T")

# The admin under the product's name; "View site" leads to the dashboard at /. The collapsible
# model sidebar is off: the session list needs the width.
admin.site.site_header = "spawnctl"
admin.site.site_title = "spawnctl"
admin.site.index_title = "Administration"

# The admin's index: the product's own apps first (its sessions, then its projects), the
# framework's (accounts, tokens, the login lockout) after them.
APP_ORDER = ("sessions_app", "components_app")
_framework_app_list = admin.site.get_app_list


def _product_first(request: HttpRequest, app_label: str | None = None) -> list[dict[str, Any]]:
    apps = _framework_app_list(request, app_label)
    return sorted(
        apps,
        key=lambda app: (
            APP_ORDER.index(app["app_label"]) if app["app_label"] in APP_ORDER else len(APP_ORDER)
        ),
    )


admin.site.get_app_list = _product_first
admin.site.site_url = "/"
admin.site.enable_nav_sidebar = False


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

    def clean_state(self) -> Any:
        # The service's rule: the workflow's own keys keep their values.
        current = {} if self.instance._state.adding else self.instance.state
        try:
            return client_state(current, self.cleaned_data["state"])
        except ValidationError as error:
            raise forms.ValidationError(error.message_dict["state"]) from None


# The run page's buttons: the admin's own actions, so that they follow the same rules.
RUN_ACTIONS = {
    "retry-children": actions.retry_failed_children,
    "spawn-missing": actions.spawn_missing_child_sessions,
    "cancel": actions.cancel_sessions,
    "release-leases": actions.release_leases,
}

#: How many children a session's change page lists (the run page pages through all of them).
CHILDREN_SHOWN = 100

RETRY_HINT = "To run a failed or cancelled session again, use the “Retry selected sessions” action."


class SessionChangeList(ChangeList):
    """The changelist's page of rows, then their children's counts and cost for those rows
    alone: one grouped query whatever the number of sessions and children (a row's own cost and
    its first and last step's times are columns it keeps). Annotated onto the listing's own
    query, every count and sum was computed for every session before the page was cut."""

    def get_results(self, request: HttpRequest) -> None:
        super().get_results(request)
        rows = list(self.result_list)
        selectors.with_children_progress(rows)
        for row in rows:  # its first step's and last result's times are on its row
            row.run_cost = row.own_cost_usd + row.children_summary.cost_usd
        self.result_list = rows


class StalledFilter(admin.SimpleListFilter):
    title = "stalled"
    parameter_name = "stalled"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin):
        return [("yes", "Stalled (lease expired)"), ("no", "Not stalled")]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        stalled = stalled_at(timezone.now())
        if self.value() == "yes":
            return queryset.filter(stalled)
        if self.value() == "no":
            return queryset.exclude(stalled)
        return queryset


class LevelFilter(admin.SimpleListFilter):
    title = "level"
    parameter_name = "level"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin):
        return [("runs", "Runs (no parent)"), ("children", "Child sessions")]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        if self.value() == "runs":
            return queryset.filter(parent_session__isnull=True)
        if self.value() == "children":
            return queryset.filter(parent_session__isnull=False)
        return queryset


class ParentFilter(admin.SimpleListFilter):
    """A run and its children: the parent first, then its children in spawn order. Offers the
    latest parents; any session's id or short id works in the address too."""

    title = "run"
    parameter_name = "parent"
    LATEST = 8

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin):
        parents = (
            model_admin.get_queryset(request)
            .filter(Exists(Session.objects.filter(parent_session_id=OuterRef("pk"))))
            .select_related("component")
            .order_by("-created_at")[: self.LATEST]
        )
        choices = [
            (str(p.pk), f"{selectors.display_name(p)} {selectors.short_id(p.pk)}") for p in parents
        ]
        value = self.value()
        if value and value not in dict(choices):
            choices.append((value, value))
        return choices

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        value = self.value()
        if not value:
            return queryset
        try:
            parent = selectors.find_session_by_id(id_or_prefix=value, sessions=queryset)
        except ServiceError as error:
            raise IncorrectLookupParameters(error.message) from None
        if parent is None:
            return queryset.none()
        return queryset.filter(Q(pk=parent.pk) | Q(parent_session_id=parent.pk))


class RunnerFilter(admin.SimpleListFilter):
    title = "runner"
    parameter_name = "runner"
    NONE = "-"
    SHOWN = 20

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin):
        runners = (
            model_admin.get_queryset(request)
            .filter(runner__isnull=False)
            .order_by("runner")
            .values_list("runner", flat=True)
            .distinct()[: self.SHOWN]
        )
        return [(self.NONE, "No runner"), *((runner, printable(runner)) for runner in runners)]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        value = self.value()
        if value is None:
            return queryset
        if value == self.NONE:
            return queryset.filter(runner__isnull=True)
        return queryset.filter(runner=value)


class ComponentFilter(admin.SimpleListFilter):
    """Sessions of one component. Offers the runs' contexts (a list of every component would
    name each of a large run's children); any component's id works in the address."""

    title = "component"
    parameter_name = "component__id__exact"
    SHOWN = 20

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin):
        contexts = (
            model_admin.get_queryset(request)
            .filter(parent_session__isnull=True, component__isnull=False)
            .order_by("component__name", "component_id")
            .values_list("component_id", "component__name")
            .distinct()[: self.SHOWN]
        )
        choices = [(str(pk), printable(name)) for pk, name in contexts]
        value = self.value()
        if value and value not in dict(choices):
            chosen = component_selectors.components_for_user(request.user).filter(
                pk=self._component_id()
            )
            choices.append((value, printable(chosen[0].name) if chosen else value))
        return choices

    def _component_id(self) -> uuid.UUID:
        try:
            return uuid.UUID(str(self.value()))
        except ValueError:
            raise IncorrectLookupParameters("Not a component id") from None

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        if not self.value():
            return queryset
        return queryset.filter(component_id=self._component_id())


# Families stay together, newest run first: a run, then its children in spawn order.
FAMILY_ORDER = [
    Coalesce("parent_session__created_at", "created_at").desc(),
    Coalesce("parent_session_id", "id").asc(),
    F("parent_session_id").asc(nulls_first=True),
    *selectors.SPAWN_ORDER,
]


@admin.register(Session)
class SessionAdmin(ProjectScopedAdmin):
    list_display = [
        "short_id",
        "component_name",
        "status_badge",
        "children_progress",
        "parent",
        "runner_lease",
        "created",
        "duration",
        "cost",
        "project",
    ]
    list_select_related = ["component", "project", "parent_session__component"]
    list_filter = [
        "status",
        StalledFilter,
        LevelFilter,
        ParentFilter,
        "type",
        ComponentFilter,
        RunnerFilter,
        ("created_at", admin.DateFieldListFilter),
        ("project", admin.RelatedOnlyFieldListFilter),
    ]
    ordering = FAMILY_ORDER
    search_fields = [
        "type",
        "component__name",
        "component__module_name",
        "project__name",
        "external_conversation_id",
        "runner",
    ]
    search_help_text = (
        "Type, component, project, runner, conversation id, or a session's id or short id."
    )
    actions = [
        actions.spawn_child_sessions,
        actions.spawn_missing_child_sessions,
        actions.retry_sessions,
        actions.retry_failed_children,
        actions.release_leases,
        actions.cancel_sessions,
    ]
    form = SessionForm
    readonly_fields = [
        "id",
        "user",
        "attempt",
        "branch",
        "runner",
        "lease",
        "run_page",
        "failure",
        "last_test_output",
        "children",
        "interactions",
        "created",
        "updated",
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
                    "max_cost_usd",
                    "external_conversation_id",
                    "state",
                    "created",
                    "updated",
                ]
            },
        ),
        ("Outcome", {"fields": ["run_page", "branch", "failure", "last_test_output"]}),
        ("Lease", {"fields": ["runner", "lease"]}),
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

    def call(
        self, request: HttpRequest, session: Session, service: Callable[..., T], **options: Any
    ) -> T | None:
        """``service`` on one selected session, as the clicking user; its error, if any,
        becomes an error message naming the session and the result is None."""
        try:
            return service(scope=self.scope_for(request, session), session_id=session.pk, **options)
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
            return ["id", "user"]
        # What a session is and where it hangs in the tree is fixed once it exists, as the
        # service's update allows only status, state, execution mode and conversation id.
        fixed = [*self.readonly_fields, "project", "type", "component", "parent_session"]
        if obj.is_finished:
            # Its workflow has ended: its state is history, shown, not a box of raw JSON; a
            # complete session's status cannot change (a failed or cancelled one may still be
            # accepted by hand as complete).
            fixed.append("state_shown")
            if obj.status == "complete":
                fixed.append("status")
        return fixed

    @admin.display(description="state")
    def state_shown(self, session: Session) -> SafeString:
        return format_html(
            '<pre class="test-output">{}</pre>',
            json.dumps(session.state, indent=2, sort_keys=True, ensure_ascii=False),
        )

    def get_fieldsets(self, request: HttpRequest, obj: Session | None = None):
        if obj is not None and obj.is_finished:
            name, options = self.fieldsets[0]
            shown = [("state_shown" if f == "state" else f) for f in options["fields"]]
            return [(name, {**options, "fields": shown}), *self.fieldsets[1:]]
        if obj is not None:
            return self.fieldsets
        # A new session starts on its first attempt, with no lease, no history and no times.
        name, options = self.fieldsets[0]
        new = [f for f in options["fields"] if f not in ("attempt", "created", "updated")]
        return [(name, {**options, "fields": new})]

    def formfield_for_dbfield(self, db_field, request: HttpRequest, **kwargs: Any):
        if db_field.name == "type":
            # A type is a registered workflow: offer those, not a free-text box.
            return forms.ChoiceField(
                choices=[("", "---------"), *((name, name) for name in session_types())],
                label="Type",
                help_text=db_field.help_text,
            )
        return super().formfield_for_dbfield(db_field, request, **kwargs)

    def get_urls(self):
        run = [
            path(
                "<path:session_id>/run/",
                self.admin_site.admin_view(operator_views.run_page),
                name="sessions_app_session_run",
            ),
            path(
                "<path:session_id>/run/live/",
                self.admin_site.admin_view(operator_views.run_live),
                name="sessions_app_session_run_live",
            ),
            path(
                "<path:session_id>/log/",
                self.admin_site.admin_view(operator_views.session_log),
                name="sessions_app_session_log",
            ),
            path(
                "<path:session_id>/run/report/",
                self.admin_site.admin_view(operator_views.run_report),
                name="sessions_app_session_run_report",
            ),
            path(
                "<path:session_id>/run/<slug:action>/",
                self.admin_site.admin_view(self.run_action),
                name="sessions_app_session_run_action",
            ),
        ]
        return [*run, *super().get_urls()]

    def run_action(self, request: HttpRequest, session_id: str, action: str) -> HttpResponse:
        """A button of the run page: the admin action of that name on the run (``release-leases``
        on every leased session of it), its messages shown on the run page it returns to."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        chosen = RUN_ACTIONS.get(action)
        if chosen is None:
            raise Http404("No such action")
        if not self.has_change_permission(request):
            raise PermissionDenied
        try:
            pk = uuid.UUID(session_id)
        except ValueError:
            raise Http404("Session not found") from None
        session = self.get_queryset(request).filter(pk=pk).first()
        if session is None or not session.is_context:
            raise Http404("Session not found")
        if action == "release-leases":
            queryset = self.get_queryset(request).filter(
                Q(pk=pk) | Q(parent_session_id=pk), runner__isnull=False
            )
            if not queryset.exists():
                self.report(
                    request, session, "no session of this run holds a lease.", messages.INFO
                )
        else:
            queryset = self.get_queryset(request).filter(pk=pk)
        chosen(self, request, queryset)
        return redirect(reverse("admin:sessions_app_session_run", args=[pk]))

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
        # A complete session's form has no status field: its status stays as it is.
        obj.status = form.initial.get("status", obj.status)
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
            pass
        else:
            return queryset.filter(pk=session_id), False
        found, may_have_duplicates = super().get_search_results(request, queryset, search_term)
        # A short id (or any prefix of an id) finds its session beside the text matches.
        prefix = selectors.id_prefix(search_term)
        if prefix is not None:
            found = found | queryset.filter(pk__startswith=prefix)
        return found, may_have_duplicates

    @admin.display(description="session", ordering="created_at")
    def short_id(self, session: Session) -> SafeString:
        # The type rides under the id: a column of its own would not fit at 1366 px.
        return format_html(
            '<span title="{}">{}</span><br><span class="muted session-kind">{}</span>',
            session.pk,
            selectors.short_id(session.pk),
            self.kind(session),
        )

    @admin.display(description="component", ordering="component__name")
    def component_name(self, session: Session) -> SafeString | None:
        marker = mark_safe('<span class="child-marker" title="child session">↳</span>')
        if session.component is None:
            return marker if session.parent_session_id else None
        return format_html(
            '{}<span title="{}">{}</span>',
            marker if session.parent_session_id else "",
            session.component.module_name,
            session.component.name,
        )

    @admin.display(description="type", ordering="type")
    def kind(self, session: Session) -> SafeString:
        short = {
            CONTEXT_TESTING_SESSIONS: "context",
            COMPONENT_TEST_SESSIONS: "component",
        }.get(session.type, session.type)
        return format_html('<span title="{}">{}</span>', session.type, short)

    @admin.display(description="status", ordering="status")
    def status_badge(self, session: Session) -> SafeString:
        return badge("stalled" if session.is_stalled(timezone.now()) else session.status)

    @admin.display(description="parent", ordering="parent_session__created_at")
    def parent(self, session: Session) -> SafeString | None:
        if session.parent_session is None:
            return None
        return format_html(
            '<a href="{}" title="{}">{}</a>',
            reverse("admin:sessions_app_session_change", args=[session.parent_session_id]),
            selectors.display_name(session.parent_session),
            selectors.short_id(session.parent_session_id),
        )

    @admin.display(description="runner")
    def runner_lease(self, session: Session) -> SafeString | str:
        if session.runner is None:
            return self.get_empty_value_display()
        stalled = session.is_stalled(timezone.now())
        until = clock(session.leased_until)
        return format_html(
            '<span title="{}">{}</span><br><span class="muted nowrap" title="{} {}">{} {}</span>',
            session.runner,
            session.runner if len(session.runner) <= 16 else session.runner[:15] + "…",
            "lease expired" if stalled else "leased until",
            until,
            badge("stalled") if stalled else "until",
            until.split(" ")[1],
        )

    @admin.display(description="created", ordering="created_at")
    def created(self, session: Session) -> SafeString:
        day, time = clock(session.created_at).split(" ")
        return format_html(
            '<span class="nowrap">{}</span> <span class="nowrap">{}</span>', day, time
        )

    @admin.display(description="updated")
    def updated(self, session: Session) -> str:
        return clock(session.updated_at)

    @admin.display(description="duration")
    def duration(self, session: Session) -> str:
        """First step handed out to last result reported (``Session.seconds``), once the
        session has finished."""
        if not session.is_finished or session.seconds is None:
            return ""
        return duration_text(session.seconds)

    @admin.display(description="cost")
    def cost(self, session: Session) -> str:
        """What the session's run cost: its steps and its children's."""
        return cost_text(getattr(session, "run_cost", None))

    @admin.display(description="leased until")
    def lease(self, session: Session) -> str:
        if session.leased_until is None:
            return "no lease"
        state = " (expired: stalled)" if session.is_stalled(timezone.now()) else ""
        return f"{clock(session.leased_until)}{state}"

    @admin.display(description="run page")
    def run_page(self, session: Session) -> SafeString:
        return format_html(
            '<a href="{}">Children, steps and timeline</a>',
            reverse("admin:sessions_app_session_run", args=[session.pk]),
        )

    @admin.display(description="failure reason")
    def failure(self, session: Session) -> str:
        reason = selectors.shown_failure_reason(session)
        return self.get_empty_value_display() if reason is None else reason

    @admin.display(description="last test output")
    def last_test_output(self, session: Session) -> SafeString | str:
        output = session.state.get("last_test_output") if session.state else None
        if not isinstance(output, str) or not output:
            return self.get_empty_value_display()
        return format_html(
            '<details class="test-output"><summary>{} line{}</summary>'
            '<pre class="test-output">{}</pre></details>',
            output.count("\n") + 1,
            pluralize(output.count("\n") + 1),
            output,
        )

    @admin.display(description="children")
    def children_progress(self, session: Session) -> SafeString | str:
        summary = selectors.children_progress(session)
        if not summary.total:
            return self.get_empty_value_display()
        return format_html(
            '<a href="{}" title="run page">{}</a>',
            reverse("admin:sessions_app_session_run", args=[session.pk]),
            render_to_string(
                "admin/sessions_app/session/children_progress.html",
                {"summary": summary, "widths": progress_widths(summary)},
            ),
        )

    @admin.display(description="children")
    def children(self, session: Session) -> SafeString:
        now = timezone.now()
        # A large run's children are listed a page at a time on its run page; here, the first
        # in spawn order and the counts of all of them.
        children = list(selectors.child_sessions_with_cost(session=session)[:CHILDREN_SHOWN])
        summary = selectors.children_summary(session, now=now)
        rows = [
            {
                "session": child,
                "name": selectors.display_name(child),
                "url": reverse("admin:sessions_app_session_change", args=[child.pk]),
                "badge": badge("stalled" if child.is_stalled(now) else child.status),
                "stalled": child.is_stalled(now),
                "short_id": selectors.short_id(child.pk),
                "leased_until": clock(child.leased_until),
                "reason": selectors.shown_failure_reason(child) or "",
            }
            for child in children
        ]
        return render_to_string(
            "admin/sessions_app/session/children.html",
            {
                "rows": rows,
                "summary": summary,
                "more": summary.total - len(rows),
                "run_url": reverse("admin:sessions_app_session_run", args=[session.pk]),
            },
        )

    @admin.display(description="interactions")
    def interactions(self, session: Session) -> SafeString:
        rows = []
        for interaction in selectors.interactions_for_session(session=session):
            result = interaction.result or {}
            rows.append(
                {
                    "interaction": interaction,
                    "created": clock(interaction.created_at),
                    "completed": clock(interaction.completed_at),
                    "badge": badge(result.get("status") or "pending"),
                    "duration": _step_duration(interaction),
                    "output": "\n".join(
                        text for text in (result.get("stdout"), result.get("stderr")) if text
                    ),
                    "command": json.dumps(interaction.command, indent=2, sort_keys=True),
                    "result": json.dumps(interaction.result, indent=2, sort_keys=True),
                }
            )
        return render_to_string("admin/sessions_app/session/interactions.html", {"rows": rows})


def _step_duration(interaction: Interaction) -> str:
    """The command's own time as the runner measured it, else the step's wall time."""
    measured = (interaction.result or {}).get("duration_ms")
    if isinstance(measured, int) and not isinstance(measured, bool) and measured >= 0:
        return duration_text(measured / 1000)
    if interaction.completed_at is None:
        return ""
    return duration_text((interaction.completed_at - interaction.created_at).total_seconds())


@admin.register(Interaction)
class InteractionAdmin(ProjectScopedAdmin):
    """History, not something to edit: results arrive through the service."""

    project_path = "session__project"
    list_display = ["step_name", "session", "result_status", "created_at", "completed_at"]
    list_select_related = ["session__component"]
    list_filter = ["step_name"]
    search_fields = ["step_name", "session__component__name"]
    fields = [
        "id",
        "session",
        "step_name",
        "shell_command",
        "command_metadata",
        "result_shown",
        "created_at",
        "completed_at",
    ]
    readonly_fields = fields
    ordering = ["-created_at"]

    @admin.display(description="command")
    def shell_command(self, interaction: Interaction) -> SafeString:
        """The shell line, collapsed under its first line: a git step's fills forty lines."""
        line = str((interaction.command or {}).get("command") or "")
        first = line.strip().splitlines()[0] if line.strip() else ""
        return format_html(
            '<details><summary><code>{}</code>{}</summary><pre class="test-output">{}</pre>'
            "</details>",
            first[:120],
            " …" if len(first) > 120 or "\n" in line.strip() else "",
            line,
        )

    @admin.display(description="metadata")
    def command_metadata(self, interaction: Interaction) -> SafeString:
        metadata = (interaction.command or {}).get("metadata") or {}
        return format_html(
            '<details><summary>{} key{}</summary><pre class="test-output">{}</pre></details>',
            len(metadata),
            "" if len(metadata) == 1 else "s",
            json.dumps(metadata, indent=2, sort_keys=True, ensure_ascii=False),
        )

    @admin.display(description="result")
    def result_shown(self, interaction: Interaction) -> SafeString:
        if interaction.result is None:
            return format_html('<span class="muted">{}</span>', "pending")
        return format_html(
            '<pre class="test-output">{}</pre>',
            json.dumps(interaction.result, indent=2, sort_keys=True, ensure_ascii=False),
        )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Interaction | None = None) -> bool:
        return False

    @admin.display(description="result")
    def result_status(self, interaction: Interaction) -> str:
        if interaction.result is None:
            return "pending"
        return interaction.result.get("status", "")
