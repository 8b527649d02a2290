from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib import admin
from django.contrib.admin import helpers
from django.contrib.auth import get_permission_codename
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Count, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest

from components_app import selectors
from components_app.models import Component, Project
from core.forms import StorableJSONFormField
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


@admin.register(Project)
class ProjectAdmin(ProjectScopedAdmin):
    project_path = ""
    list_display = ["name", "member_count", "component_count", "created_at"]
    search_fields = ["name"]
    fields = ["name", "test_command_template", "test_path_template"]
    inlines = [MembershipInline]

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
    list_display = ["name", "module_name", "type", "priority", "parent_component", "project"]
    list_select_related = ["parent_component", "project"]
    list_filter = [("project", admin.RelatedOnlyFieldListFilter), "type"]
    search_fields = ["name", "module_name", "description"]
    fields = [
        "project",
        "name",
        "module_name",
        "type",
        "priority",
        "parent_component",
        "description",
        "created_at",
        "updated_at",
    ]
    readonly_fields = ["created_at", "updated_at"]
    inlines = [ChildComponentInline]

    def get_readonly_fields(self, request, obj=None):
        # A component stays in the project it was created in, with its children.
        fixed = ["project"] if obj is not None else []
        return [*fixed, *super().get_readonly_fields(request, obj)]

    scoped_choices = {
        "project": selectors.projects_for_user,
        "parent_component": selectors.components_for_user,
    }
