from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.utils import unquote
from django.contrib.auth import get_permission_codename, get_user_model
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import models
from django.db.models import Count, QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBadRequest
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.safestring import SafeData, mark_safe

from components_app import selectors, services
from components_app.models import Component, Project
from core.errors import ServiceError
from core.forms import StorableJSONFormField
from core.json_values import unstorable_reason
from core.scope import Scope
from core.text import printable

INVALID_SELECTION = "The selection holds {value}, which is not an id of this list."


class ProjectScopedAdmin(admin.ModelAdmin):
    """Staff who are not superusers see and choose only what belongs to their projects.

    ``project_path`` leads from the model to its project (empty for Project itself);
    ``scoped_choices`` maps a foreign key to the function that lists what a user may choose.
    """

    project_path = "project"
    scoped_choices: dict[str, Callable[[Any], QuerySet]] = {}
    formfield_overrides = {models.JSONField: {"form_class": StorableJSONFormField}}

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        queryset = super().get_queryset(request)
        if request.user.is_superuser:
            return queryset
        members = f"{self.project_path}__members" if self.project_path else "members"
        return queryset.filter(**{members: request.user})

    def formfield_for_foreignkey(self, db_field, request: HttpRequest, **kwargs: Any):
        visible = self.scoped_choices.get(db_field.name)
        if visible is not None and not request.user.is_superuser:
            kwargs["queryset"] = visible(request.user)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def message_user(self, request: HttpRequest, message: str, *args: Any, **kwargs: Any) -> None:
        # Names, types and reasons in messages come from clients: control and format
        # characters are shown as escapes, so they cannot reorder or hide the text around
        # them. (Escapes add no markup: Django's own messages with links stay safe HTML.)
        shown = printable(message)
        if isinstance(message, SafeData):
            shown = mark_safe(shown)
        super().message_user(request, shown, *args, **kwargs)

    def response_action(self, request: HttpRequest, queryset: QuerySet) -> HttpResponse | None:
        # Django filters the queryset by the posted ids as they are, and a value that is no
        # UUID fails in the database layer as a 500.
        for value in request.POST.getlist(helpers.ACTION_CHECKBOX_NAME):
            try:
                self.model._meta.pk.to_python(value)
            except ValidationError:
                text = INVALID_SELECTION.format(value=printable(repr(value[:100])))
                return HttpResponseBadRequest(text, content_type="text/plain; charset=utf-8")
        return super().response_action(request, queryset)


class MembershipInline(admin.TabularInline):
    model = Project.members.through
    extra = 0
    verbose_name = "member"
    verbose_name_plural = "members"

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return super().get_queryset(request).select_related("user")

    def formfield_for_foreignkey(self, db_field, request: HttpRequest, **kwargs: Any):
        if db_field.name == "user" and not request.user.is_superuser:
            # A staff member who is not a superuser sees, and may add, only the people they
            # already share a project with; everyone else's username stays hidden.
            kwargs["queryset"] = (
                get_user_model()
                .objects.filter(projects__members=request.user)
                .distinct()
                .order_by("username")
            )
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    # Django would ask for permissions on User for an auto-created through model; managing a
    # project's members is part of changing the project, so the project's permissions decide.
    def _has_project_perm(self, request: HttpRequest, action: str) -> bool:
        opts = self.parent_model._meta
        return request.user.has_perm(f"{opts.app_label}.{get_permission_codename(action, opts)}")

    def has_view_permission(self, request: HttpRequest, obj=None) -> bool:
        return self._has_project_perm(request, "view") or self._has_project_perm(request, "change")

    def has_add_permission(self, request: HttpRequest, obj=None) -> bool:
        return self._has_project_perm(request, "change")

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return self._has_project_perm(request, "change")

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return self._has_project_perm(request, "change")


# The admin's import reads the manifest that ``spawnctl import --manifest`` reads, as JSON.
MANIFEST_MAX_BYTES = 10 * 1024 * 1024
NOT_A_MANIFEST = 'A manifest is a JSON object with a "components" list (see docs/import.md).'
SHOWN_ROW_ERRORS = 50


class ImportComponentsForm(forms.Form):
    manifest = forms.FileField(
        help_text='A JSON file: {"version": 1, "components": [{"module_name", "name", "type", '
        '"priority", "description", "parent_module_name"}, ...]}.'
    )
    prune = forms.BooleanField(
        required=False,
        help_text="Also delete the project's components the manifest does not name (never "
        "one that has sessions).",
    )

    def clean_manifest(self) -> list[Any]:
        upload = self.cleaned_data["manifest"]
        if upload.size > MANIFEST_MAX_BYTES:
            raise forms.ValidationError(f"The manifest is larger than {MANIFEST_MAX_BYTES} bytes.")
        try:
            document = json.loads(upload.read().decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError) as error:
            raise forms.ValidationError(f"The manifest is not valid JSON: {error}") from None
        if problem := unstorable_reason(document):
            raise forms.ValidationError(problem)
        if (
            not isinstance(document, dict)
            or not isinstance(document.get("components"), list)
            or set(document) - {"version", "components"}
            or document.get("version", 1) != 1
        ):
            raise forms.ValidationError(NOT_A_MANIFEST)
        return document["components"]


def row_error_lines(error: services.InvalidRows) -> list[str]:
    lines = [
        printable(f"Row {index}, {field}: {message}")
        for index, fields in error.row_errors.items()
        for field, messages in fields.items()
        for message in messages
    ]
    if len(lines) > SHOWN_ROW_ERRORS:
        lines[SHOWN_ROW_ERRORS:] = [f"… and {len(lines) - SHOWN_ROW_ERRORS} more."]
    return lines


@admin.register(Project)
class ProjectAdmin(ProjectScopedAdmin):
    project_path = ""
    # Adds the component tree and the "Import components" link to the project's page.
    change_form_template = "admin/components_app/project/change_form.html"
    list_display = ["name", "member_count", "component_count", "created_at"]
    search_fields = ["name"]
    fieldsets = [
        (None, {"fields": ["name"]}),
        (
            "How runs work",
            {"fields": [*services.PROJECT_SETTINGS]},
        ),
    ]
    inlines = [MembershipInline]
    # Command lines and templates are read whole, not through a slit.
    formfield_overrides = {
        models.CharField: {
            "widget": forms.TextInput(
                attrs={"style": "width: 60em; max-width: 100%; font-family: monospace"}
            )
        }
    }

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        # Counted before the membership filter: counting after it would reuse the filter's
        # join and see only the requesting member.
        counted = Project.objects.annotate(
            members_count=Count("members", distinct=True),
            components_count=Count("components", distinct=True),
        )
        return counted.filter(pk__in=super().get_queryset(request).values("pk"))

    @admin.display(description="members", ordering="members_count")
    def member_count(self, project: Project) -> int:
        return project.members_count

    @admin.display(description="components", ordering="components_count")
    def component_count(self, project: Project) -> int:
        return project.components_count

    def save_related(self, request: HttpRequest, form, formsets, change: bool) -> None:
        super().save_related(request, form, formsets, change)
        if not change:
            # As through the API, whoever creates a project is one of its members, so that a
            # staff member does not lose sight of the project they have just made.
            form.instance.members.add(request.user)

    def get_urls(self) -> list[URLPattern]:
        view = self.admin_site.admin_view(self.import_components_view)
        name = f"{self.opts.app_label}_{self.opts.model_name}_import_components"
        return [path("<path:object_id>/import-components/", view, name=name), *super().get_urls()]

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context=None
    ):
        project = self.get_object(request, unquote(object_id))
        if project is not None:
            extra_context = {
                **(extra_context or {}),
                "component_tree": selectors.component_tree(
                    scope=Scope(user=request.user, project=project)
                ),
                "import_url": reverse(
                    f"admin:{self.opts.app_label}_{self.opts.model_name}_import_components",
                    args=[project.pk],
                ),
            }
        return super().change_view(request, object_id, form_url, extra_context)

    def _may_import(self, request: HttpRequest, project: Project, *, prune: bool) -> bool:
        needed = ["add_component", "change_component"] + (["delete_component"] if prune else [])
        return self.has_change_permission(request, project) and all(
            request.user.has_perm(f"components_app.{codename}") for codename in needed
        )

    def import_components_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        project = self.get_object(request, unquote(object_id))
        if project is None:
            raise Http404("Project not found")
        if not self._may_import(request, project, prune=False):
            raise PermissionDenied
        form = ImportComponentsForm(request.POST or None, request.FILES or None)
        if request.method == "POST" and form.is_valid():
            prune = form.cleaned_data["prune"]
            if not self._may_import(request, project, prune=prune):
                raise PermissionDenied
            try:
                result = services.bulk_upsert_components(
                    scope=Scope(user=request.user, project=project),
                    rows=form.cleaned_data["manifest"],
                    prune=prune,
                )
            except services.InvalidRows as error:
                form.add_error("manifest", row_error_lines(error))
            except ServiceError as error:
                form.add_error(None, printable(error.message))
            else:
                self.message_user(
                    request,
                    f"Imported: {result.created} created, {result.updated} updated, "
                    f"{result.unchanged} unchanged, {result.deleted} deleted.",
                    messages.SUCCESS,
                )
                return redirect(
                    f"admin:{self.opts.app_label}_{self.opts.model_name}_change", project.pk
                )
        context = {
            **self.admin_site.each_context(request),
            "title": f"Import components into {project}",
            "opts": self.opts,
            "original": project,
            "form": form,
        }
        return TemplateResponse(
            request, "admin/components_app/project/import_components.html", context
        )


class ChildComponentInline(admin.TabularInline):
    model = Component
    fk_name = "parent_component"
    fields = ["name", "module_name", "type", "priority"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True
    verbose_name = "child component"
    verbose_name_plural = "child components (spawn order)"

    def has_add_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


@admin.register(Component)
class ComponentAdmin(ProjectScopedAdmin):
    list_display = [
        "name",
        "module_name",
        "type",
        "priority",
        "excluded",
        "parent_component",
        "project",
    ]
    list_select_related = ["parent_component", "project"]
    list_filter = [("project", admin.RelatedOnlyFieldListFilter), "type", "excluded"]
    search_fields = ["name", "module_name", "description", "source_path"]
    fields = [
        "project",
        "name",
        "module_name",
        "type",
        "priority",
        "parent_component",
        "source_path",
        "excluded",
        "description",
        "created_at",
        "updated_at",
    ]
    readonly_fields = ["created_at", "updated_at"]
    inlines = [ChildComponentInline]

    def get_deleted_objects(self, objs, request):
        # The service's rule (services.delete_component): a component that has sessions is
        # kept. Listed as protected, the admin's delete page and action refuse it.
        deleted, model_count, perms_needed, protected = super().get_deleted_objects(objs, request)
        tested = Component.objects.filter(
            pk__in=[obj.pk for obj in objs], sessions__isnull=False
        ).distinct()
        protected = [*protected, *(f"{component} (it has sessions)" for component in tested)]
        return deleted, model_count, perms_needed, protected

    def save_model(self, request: HttpRequest, obj: Component, form, change: bool) -> None:
        super().save_model(request, obj, form, change)
        if change and "excluded" in form.changed_data and obj.excluded:
            # As through the API: its active children are cancelled with it (the admin's
            # change view is one transaction).
            services.announce_excluded(
                scope=Scope(user=request.user, project=obj.project), component_ids=[obj.pk]
            )

    def get_readonly_fields(self, request, obj=None):
        # A component stays in the project it was created in, with its children.
        fixed = ["project"] if obj is not None else []
        return [*fixed, *super().get_readonly_fields(request, obj)]

    scoped_choices = {
        "project": selectors.projects_for_user,
        "parent_component": selectors.components_for_user,
    }
