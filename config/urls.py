from django.contrib import admin
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from core.api.exceptions import unknown_api_path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/", include("components_app.api.urls")),
    path("api/", include("sessions_app.api.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="docs"),
    re_path(r"^api/", unknown_api_path),
]
