"""Projects and components over HTTP: each handler is one service or selector call."""

from __future__ import annotations

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from components_app import selectors, services
from components_app.api.filters import ComponentFilter
from components_app.api.parsers import BulkJSONParser
from components_app.api.serializers import (
    BulkComponentsResultSerializer,
    BulkComponentsSerializer,
    ComponentCreateSerializer,
    ComponentSerializer,
    ComponentUpdateSerializer,
    ProjectCreateSerializer,
    ProjectSerializer,
    ProjectUpdateSerializer,
)
from components_app.models import Component, Project
from core.api.docs import READ_ERRORS, WRITE_ERRORS, error_responses
from core.api.scoping import object_or_404, scope_for
from core.api.viewsets import ScopedViewSet

PROJECT_NOT_FOUND = "Project not found"


@extend_schema_view(
    list=extend_schema(
        summary="List the caller's projects",
        responses={200: ProjectSerializer(many=True), **error_responses(400, *READ_ERRORS)},
    ),
    retrieve=extend_schema(
        summary="Read a project and its settings",
        responses={200: ProjectSerializer, **error_responses(*READ_ERRORS)},
    ),
)
class ProjectViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ScopedViewSet):
    serializer_class = ProjectSerializer
    not_found_message = PROJECT_NOT_FOUND

    def get_queryset(self) -> QuerySet[Project]:
        return selectors.projects_for_user(self.request.user)

    @extend_schema(
        summary="Create a project; the caller becomes a member",
        request=ProjectCreateSerializer,
        responses={201: ProjectSerializer, **error_responses(400, 401, 413, 415)},
    )
    def create(self, request: Request) -> Response:
        serializer = ProjectCreateSerializer(data=request.data, context={"request": request})
        serializer.is_valid(raise_exception=True)
        project = services.create_project(user=request.user, **serializer.validated_data)
        return Response(ProjectSerializer(project).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        summary="Change a project's name and settings",
        description="Validated as the admin's project form validates them: 400 naming the "
        "field. A test path template that would give two components one test file is a 400 "
        "naming `test_path_template`.",
        request=ProjectUpdateSerializer,
        responses={200: ProjectSerializer, **error_responses(*WRITE_ERRORS)},
    )
    def partial_update(self, request: Request, pk: str) -> Response:
        project = self.get_object()
        serializer = ProjectUpdateSerializer(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        project = services.update_project(
            scope=scope_for(request, project), **serializer.validated_data
        )
        return Response(ProjectSerializer(project).data)


@extend_schema_view(
    list=extend_schema(
        summary="List the components of the caller's projects, in spawn order",
        responses={200: ComponentSerializer(many=True), **error_responses(400, *READ_ERRORS)},
    ),
    retrieve=extend_schema(
        summary="Read a component",
        responses={200: ComponentSerializer, **error_responses(*READ_ERRORS)},
    ),
)
class ComponentViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ScopedViewSet):
    serializer_class = ComponentSerializer
    not_found_message = services.COMPONENT_NOT_FOUND
    filterset_class = ComponentFilter

    def get_queryset(self) -> QuerySet[Component]:
        return selectors.components_for_user(self.request.user).select_related("project")

    @extend_schema(
        summary="Create a component",
        request=ComponentCreateSerializer,
        responses={201: ComponentSerializer, **error_responses(400, 401, 413, 415)},
    )
    def create(self, request: Request) -> Response:
        serializer = ComponentCreateSerializer(data=request.data, context={"request": request})
        serializer.is_valid(raise_exception=True)
        fields = dict(serializer.validated_data)
        scope = scope_for(request, fields.pop("project"))
        component = services.create_component(scope=scope, **fields)
        return Response(ComponentSerializer(component).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        summary="Change a component",
        request=ComponentUpdateSerializer,
        responses={200: ComponentSerializer, **error_responses(*WRITE_ERRORS)},
    )
    def partial_update(self, request: Request, pk: str) -> Response:
        component = self.get_object()
        serializer = ComponentUpdateSerializer(
            data=request.data, partial=True, context={"request": request}
        )
        serializer.is_valid(raise_exception=True)
        component = services.update_component(
            scope=scope_for(request, component.project),
            component_id=component.pk,
            **serializer.validated_data,
        )
        return Response(ComponentSerializer(component).data)

    @extend_schema(
        summary="Delete a component",
        description="A component that has sessions is not deleted: 409 naming it.",
        request=None,
        responses={204: None, **error_responses(*READ_ERRORS, 409)},
    )
    def destroy(self, request: Request, pk: str) -> Response:
        component = self.get_object()
        services.delete_component(
            scope=scope_for(request, component.project), component_id=component.pk
        )
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        summary="Create or update a project's components by module name, in one transaction",
        description=(
            "Rows are matched to the project's components by `module_name`; a parent is named "
            "by its module name (a row of the list or a component of the project). Any bad row "
            'is a 400 naming the row\'s index and field, `{"components": {"3": '
            '{"parent_module_name": [...]}}}`, and nothing is written. With `prune`, the '
            "project's components the list does not name are deleted; one that has sessions "
            "is never deleted: 409 naming it, nothing written. With `dry_run`, everything is "
            "checked and applied, then rolled back: the same answer or error, nothing stored. "
            "Bodies up to 10 MiB."
        ),
        request=BulkComponentsSerializer,
        responses={
            200: BulkComponentsResultSerializer,
            **error_responses(400, 401, 404, 409, 413, 415),
        },
    )
    @action(detail=False, methods=["post"], url_path="bulk", parser_classes=[BulkJSONParser])
    def bulk(self, request: Request) -> Response:
        serializer = BulkComponentsSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        fields = serializer.validated_data
        project = object_or_404(
            selectors.projects_for_user(request.user), fields["project"], PROJECT_NOT_FOUND
        )
        result = services.bulk_upsert_components(
            scope=scope_for(request, project),
            rows=fields["components"],
            prune=fields["prune"],
            dry_run=fields["dry_run"],
        )
        body = {
            "created": result.created,
            "updated": result.updated,
            "unchanged": result.unchanged,
            "deleted": result.deleted,
            "components": ComponentSerializer(result.components, many=True).data,
            "dry_run": result.dry_run,
            "actions": [
                {
                    "module_name": a.module_name,
                    "action": a.action,
                    "changes": list(a.changes),
                    "before": a.before or {},
                    "after": a.after or {},
                }
                for a in result.actions
            ],
        }
        return Response(body)
