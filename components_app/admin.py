from django.contrib import admin

from components_app.models import Component, Project


@admin.register(Project)
class ProjectAdmin(admin.ModelAdmin):
    list_display = ["name", "created_at"]
    search_fields = ["name"]
    filter_horizontal = ["members"]


@admin.register(Component)
class ComponentAdmin(admin.ModelAdmin):
    list_display = ["name", "module_name", "type", "priority", "parent_component", "project"]
    list_filter = ["project", "type"]
    search_fields = ["name", "module_name"]
    ordering = ["-priority", "name"]
