from rest_framework.routers import SimpleRouter

from components_app.api.views import ComponentViewSet, ProjectViewSet

router = SimpleRouter()
router.register("projects", ProjectViewSet, basename="project")
router.register("components", ComponentViewSet, basename="component")

urlpatterns = router.urls
