from django.contrib import admin
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.permissions import AllowAny
from rest_framework.routers import APIRootView

from core.api.exceptions import unknown_api_path
from core.health import favicon, health
from sessions_app.operator import views as operator_views


class ApiRoot(APIRootView):
    """The spawnctl REST API: projects, the components of their codebases, and the test
    sessions that coding agents run on them. Send `Authorization: Token <key>`; every list is
    paginated; the schema and its docs are linked below (docs/api.md walks through it)."""

    def get_view_name(self) -> str:
        return "spawnctl API"


# The browsable API's front page: open to anyone (it only lists links), like the schema.
api_root = ApiRoot.as_view(
    api_root_dict={
        "projects": "project-list",
        "components": "component-list",
        "sessions": "session-list",
        "schema": "schema",
        "docs": "docs",
    },
    permission_classes=[AllowAny],
)

urlpatterns = [
    path("", admin.site.admin_view(operator_views.dashboard), name="dashboard"),
    path("admin/", admin.site.urls),
    path("health/", health, name="health"),
    path("favicon.ico", favicon, name="favicon"),
    path("api/", api_root, name="api-root"),
    path("api/auth/", include("rest_framework.urls")),
    path("api/", include("components_app.api.urls")),
    path("api/", include("sessions_app.api.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="docs"),
    re_path(r"^api/", unknown_api_path),
]

# Any exception nothing else answered: a 503 while the database is away, JSON under /api/.
handler500 = "core.unavailable.server_error"
