"""Projects and components over HTTP: each handler is one service or selector call."""

from __future__ import annotations

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, status
from rest_framework.request import Request
from rest_framework.response import Response

from components_app import selectors, services
from components_app.api.serializers import (
    ComponentCreateSerializer,
    ComponentFilterSerializer,
    ComponentSerializer,
    ComponentUpdateSerializer,
    ProjectCreateSerializer,
    ProjectSerializer,
)
from components_app.models import Component, Project
from core.api.docs import READ_ERRORS, WRITE_ERRORS, error_responses
from core.api.scoping import scope_for
from core.api.viewsets import ScopedViewSet


@extend_schema_view(
    list=extend_schema(
        summary="List the caller's projects",
        responses={200: ProjectSerializer(many=True), **error_responses(*READ_ERRORS)},
    ),
)
class ProjectViewSet(mixins.ListModelMixin, ScopedViewSet):
    serializer_class = ProjectSerializer

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


@extend_schema_view(
    list=extend_schema(
        summary="List the components of the caller's projects, in spawn order",
        parameters=[ComponentFilterSerializer],
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
    filter_serializer_class = ComponentFilterSerializer
    filter_lookups = {"project": "project_id", "parent_component": "parent_component_id"}

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
        request=None,
        responses={204: None, **error_responses(*READ_ERRORS)},
    )
    def destroy(self, request: Request, pk: str) -> Response:
        component = self.get_object()
        services.delete_component(
            scope=scope_for(request, component.project), component_id=component.pk
        )
        return Response(status=status.HTTP_204_NO_CONTENT)
