from django.apps import AppConfig


class ComponentsAppConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "components_app"
    verbose_name = "Projects and components"
