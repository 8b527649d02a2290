from django.contrib import admin

from sessions_app.models import Interaction, Session


@admin.register(Session)
class SessionAdmin(admin.ModelAdmin):
    list_display = ["id", "type", "status", "component", "parent_session", "execution_mode"]
    list_filter = ["status", "type", "project"]


@admin.register(Interaction)
class InteractionAdmin(admin.ModelAdmin):
    list_display = ["step_name", "session", "created_at", "completed_at"]
