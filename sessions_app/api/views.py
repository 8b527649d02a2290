"""Sessions over HTTP: each handler finds the session among the caller's, builds the scope of
its project and makes one service call. The exception handler turns service errors into
422 / 409 / 404 / 400."""

from __future__ import annotations

import hashlib
import json

from django.db.models import QuerySet
from django.http.response import HttpResponseBase
from django.urls import reverse
from django.utils.cache import get_conditional_response
from django.utils.http import quote_etag
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import mixins, serializers, status
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from core.api.docs import READ_ERRORS, WRITE_ERRORS, error_responses
from core.api.pagination import page_parameters
from core.api.renderers import REPORT_RENDERERS, FormatParameter
from core.api.scoping import parse_uuid_or_404, scope_for
from core.api.viewsets import ScopedViewSet
from core.public import public_url
from sessions_app import report, selectors, services
from sessions_app.api.filters import ChildrenFilter, SessionFilter
from sessions_app.api.serializers import (
    ChildrenSerializer,
    ChildSessionSerializer,
    ClaimedChildSerializer,
    CommandSerializer,
    InteractionSerializer,
    LeaseSerializer,
    OptionalLeaseSerializer,
    ReleaseSerializer,
    ResultSubmittedSerializer,
    RetriedChildrenSerializer,
    SessionCreateSerializer,
    SessionSerializer,
    SessionUpdateSerializer,
)
from sessions_app.models import Session
from sessions_app.result_rules import ResultInputSerializer
from sessions_app.workflows.types import Result

INTERACTION_ID = OpenApiParameter(
    "interaction_id", type=OpenApiTypes.UUID, location=OpenApiParameter.PATH
)


@extend_schema_view(
    list=extend_schema(
        summary="List the sessions of the caller's projects, newest first",
        responses={200: SessionSerializer(many=True), **error_responses(400, *READ_ERRORS)},
    ),
    retrieve=extend_schema(
        summary="Read a session",
        responses={200: SessionSerializer, **error_responses(*READ_ERRORS)},
    ),
)
class SessionViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ScopedViewSet):
    serializer_class = SessionSerializer
    not_found_message = services.SESSION_NOT_FOUND
    filterset_class = SessionFilter
    http_method_names = ["get", "post", "patch", "head", "options"]

    def get_queryset(self) -> QuerySet[Session]:
        sessions = selectors.sessions_for_user(self.request.user).select_related("project")
        # Only what renders sessions needs their children's ids; the actions act on one.
        if self.action in ("list", "retrieve"):
            return selectors.with_child_ids(sessions)
        return sessions

    def paginate_queryset(self, queryset: QuerySet) -> list | None:
        page = super().paginate_queryset(queryset)
        if page is not None and self.action == "list":
            selectors.attach_child_ids(page)
        return page

    def _rendered(self, session: Session) -> dict:
        """The session as stored now, read back with what its JSON needs."""
        # One session's run totals come from one aggregate over its children
        # (``run_usage``), not from the listing's four subqueries.
        fresh = selectors.with_child_ids(Session.objects.filter(pk=session.pk), run=False).get()
        return SessionSerializer(fresh).data

    @extend_schema(
        summary="Create a session",
        request=SessionCreateSerializer,
        responses={201: SessionSerializer, **error_responses(400, 401, 413, 415)},
    )
    def create(self, request: Request) -> Response:
        serializer = SessionCreateSerializer(data=request.data, context={"request": request})
        serializer.is_valid(raise_exception=True)
        fields = dict(serializer.validated_data)
        session = services.create_session(scope=scope_for(request, fields.pop("project")), **fields)
        return Response(self._rendered(session), status=status.HTTP_201_CREATED)

    @extend_schema(
        summary="Change a session's status, state, execution_mode or external_conversation_id",
        request=SessionUpdateSerializer,
        responses={200: SessionSerializer, **error_responses(*WRITE_ERRORS, 409)},
    )
    def partial_update(self, request: Request, pk: str) -> Response:
        session = self.get_object()
        serializer = SessionUpdateSerializer(data=request.data, context={"request": request})
        serializer.is_valid(raise_exception=True)
        session = services.update_session(
            scope=scope_for(request, session.project),
            session_id=session.pk,
            **serializer.validated_data,
        )
        return Response(self._rendered(session))

    @extend_schema(
        summary="Spawn one child session per component of the session's context",
        description=(
            "Runs SpawnComponentTestingSessions' command generation. Idempotent: a second "
            "call answers with the children already spawned."
        ),
        request=None,
        responses={200: CommandSerializer, **error_responses(*READ_ERRORS, 409, 422)},
    )
    @action(detail=True, methods=["post"])
    def spawn(self, request: Request, pk: str) -> Response:
        session = self.get_object()
        command = services.spawn_child_sessions(
            scope=scope_for(request, session.project), session_id=session.pk
        )
        return Response(command.to_dict())

    @extend_schema(
        summary="What a context session's run produced: a report, as JSON or Markdown",
        description=(
            "The run's status, duration, branch, cost and coverage; per child its component, "
            "status, attempts, coverage, runs, cost, test file and failure reason, failures "
            "first; the children ImproveTests worked on with what was wrong first. "
            "`?format=md` answers the Markdown a reviewer reads in a pull request."
        ),
        parameters=[
            OpenApiParameter("format", str, enum=["json", "md"], description="Default json.")
        ],
        responses={
            (200, "application/json"): OpenApiTypes.OBJECT,
            (200, "text/markdown"): OpenApiTypes.STR,
            **error_responses(*READ_ERRORS, 422),
        },
    )
    @action(
        detail=True,
        methods=["get"],
        renderer_classes=REPORT_RENDERERS,
        content_negotiation_class=FormatParameter,
    )
    def report(self, request: Request, pk: str) -> Response:
        session = self.get_object()
        body = services.run_report(
            scope=scope_for(request, session.project),
            session_id=session.pk,
            run_page_url=public_url(
                request, reverse("admin:sessions_app_session_run", args=[session.pk])
            ),
        )
        if request.accepted_renderer.format == "md":
            return Response(report.markdown(body))
        return Response(body)

    @extend_schema(
        summary="The session's children in spawn order, a page at a time, with a count per "
        "status over all of them",
        description=(
            "`summary` counts every child, whatever the page and `status`; `results` is one "
            "page of the children (`?status=` only those), in spawn order. Answers carry an "
            "`ETag`: `If-None-Match` with it is an empty 304 while nothing on that page or "
            "in the summary changed."
        ),
        filters=False,
        parameters=[*page_parameters(), ChildrenFilter.status_parameter()],
        responses={200: ChildrenSerializer, **error_responses(400, *READ_ERRORS)},
    )
    @action(detail=True, methods=["get"])
    def children(self, request: Request, pk: str) -> Response | HttpResponseBase:
        session = self.get_object()
        ids = ChildrenFilter.ids(request, session)
        page_ids = self.paginate_queryset(ids)
        body = {
            "count": self.paginator.page.paginator.count,
            "next": self.paginator.get_next_link(),
            "previous": self.paginator.get_previous_link(),
            "summary": selectors.children_summary(session).as_dict(),
            "results": ChildSessionSerializer(
                selectors.children_in_order(session=session, ids=page_ids), many=True
            ).data,
        }
        # A client polling a run asks "If-None-Match: <etag>" and gets an empty 304 while
        # nothing it would see has changed; the tag is a digest of exactly what it would see.
        digest = hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode())
        etag = quote_etag(digest.hexdigest()[:32])
        not_modified = get_conditional_response(request, etag=etag)
        response = Response(body) if not_modified is None else not_modified
        response["ETag"] = etag
        return response

    @extend_schema(
        summary="The next step's command, as a pending interaction",
        description=(
            "201 with a new pending interaction, or 200 with the pending one again while its "
            "result has not been reported. With a `runner`, also takes or renews the "
            "session's lease (409 while another runner's lease is live)."
        ),
        request=OptionalLeaseSerializer,
        responses={
            201: InteractionSerializer,
            200: InteractionSerializer,
            **error_responses(*WRITE_ERRORS, 409, 422),
        },
    )
    @action(detail=True, methods=["post"], url_path="next-command")
    def next_command(self, request: Request, pk: str) -> Response:
        session = self.get_object()
        lease = _valid(OptionalLeaseSerializer, request)
        interaction, created = services.next_command(
            scope=scope_for(request, session.project), session_id=session.pk, **lease
        )
        return Response(
            InteractionSerializer(interaction).data,
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )

    @extend_schema(
        summary="Report an interaction's result; the step judges it",
        parameters=[INTERACTION_ID],
        request=ResultInputSerializer,
        responses={
            200: ResultSubmittedSerializer,
            **error_responses(*WRITE_ERRORS, 409, 422),
        },
    )
    @action(
        detail=True,
        methods=["post"],
        url_path=r"interactions/(?P<interaction_id>[^/]+)/result",
    )
    def result(self, request: Request, pk: str, interaction_id: str) -> Response:
        session = self.get_object()
        interaction_pk = parse_uuid_or_404(interaction_id, services.INTERACTION_NOT_FOUND)
        serializer = ResultInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        interaction, session = services.submit_result(
            scope=scope_for(request, session.project),
            session_id=session.pk,
            interaction_id=interaction_pk,
            result=Result(**serializer.validated_data),
        )
        return Response(
            {
                "interaction": InteractionSerializer(interaction).data,
                "session": self._rendered(session),
            }
        )

    @extend_schema(
        summary="The session's interactions, newest first",
        # A page of one session's history: the session list's filters are not its own.
        filters=False,
        responses={200: InteractionSerializer(many=True), **error_responses(400, *READ_ERRORS)},
    )
    @action(detail=True, methods=["get"])
    def interactions(self, request: Request, pk: str) -> Response:
        session = self.get_object()
        page = self.paginate_queryset(selectors.interactions_for_session(session=session))
        return self.get_paginated_response(InteractionSerializer(page, many=True).data)

    @extend_schema(
        summary="Cancel the session and its active children",
        request=None,
        responses={200: SessionSerializer, **error_responses(*READ_ERRORS, 409)},
    )
    @action(detail=True, methods=["post"])
    def cancel(self, request: Request, pk: str) -> Response:
        session = self.get_object()
        session = services.cancel_session(
            scope=scope_for(request, session.project), session_id=session.pk
        )
        return Response(self._rendered(session))

    @extend_schema(
        summary="Spawn children for the context's components that have none",
        description=(
            "Under the spawn step's rules. `metadata.child_session_ids`: every child in spawn "
            "order; `created_session_ids`: the new ones; `failed_components`: those that could "
            "not be created."
        ),
        request=None,
        responses={200: CommandSerializer, **error_responses(*READ_ERRORS, 409, 422)},
    )
    @action(detail=True, methods=["post"], url_path="spawn-missing")
    def spawn_missing(self, request: Request, pk: str) -> Response:
        session = self.get_object()
        command = services.spawn_missing_child_sessions(
            scope=scope_for(request, session.project), session_id=session.pk
        )
        return Response(command.to_dict())

    @extend_schema(
        summary="Run a failed or cancelled session again from its first step",
        request=None,
        responses={200: SessionSerializer, **error_responses(*READ_ERRORS, 409)},
    )
    @action(detail=True, methods=["post"])
    def retry(self, request: Request, pk: str) -> Response:
        session = self.get_object()
        session = services.retry_session(
            scope=scope_for(request, session.project), session_id=session.pk
        )
        return Response(self._rendered(session))

    @extend_schema(
        summary="Retry every failed or cancelled child of a context session",
        request=None,
        responses={200: RetriedChildrenSerializer, **error_responses(*READ_ERRORS, 409, 422)},
    )
    @action(detail=True, methods=["post"], url_path="retry-children")
    def retry_children(self, request: Request, pk: str) -> Response:
        session = self.get_object()
        children = services.retry_child_sessions(
            scope=scope_for(request, session.project), session_id=session.pk
        )
        return Response({"retried_session_ids": [str(child.pk) for child in children]})

    @extend_schema(
        summary="Renew (or take) the runner's lease on the session",
        request=LeaseSerializer,
        responses={200: SessionSerializer, **error_responses(*WRITE_ERRORS, 409)},
    )
    @action(detail=True, methods=["post"])
    def heartbeat(self, request: Request, pk: str) -> Response:
        session = self.get_object()
        session = services.heartbeat(
            scope=scope_for(request, session.project),
            session_id=session.pk,
            **_valid(LeaseSerializer, request),
        )
        return Response(self._rendered(session))

    @extend_schema(
        summary="Give the runner's lease on the session up",
        description='`{"runner": ...}` releases that runner\'s lease (409 while another '
        'runner\'s is live); `{"force": true}` releases whoever holds it, for any member of '
        "the project: how a dead runner's sessions are freed at once.",
        request=ReleaseSerializer,
        responses={200: SessionSerializer, **error_responses(*WRITE_ERRORS, 409)},
    )
    @action(detail=True, methods=["post"])
    def release(self, request: Request, pk: str) -> Response:
        session = self.get_object()
        session = services.release(
            scope=scope_for(request, session.project),
            session_id=session.pk,
            **_valid(ReleaseSerializer, request),
        )
        return Response(self._rendered(session))

    @extend_schema(
        summary="Lease the first claimable child to the runner, with its next command",
        description=(
            "200 with the child (now leased to the runner) and its pending interaction; 204 "
            "when no child can be claimed now (none active without a live lease, the context "
            "finished, or `max_parallel_children` children running)."
        ),
        request=LeaseSerializer,
        responses={
            200: ClaimedChildSerializer,
            204: None,
            **error_responses(*WRITE_ERRORS, 422),
        },
    )
    @action(detail=True, methods=["post"], url_path="claim-child")
    def claim_child(self, request: Request, pk: str) -> Response:
        session = self.get_object()
        claimed = services.claim_child(
            scope=scope_for(request, session.project),
            session_id=session.pk,
            **_valid(LeaseSerializer, request),
        )
        if claimed is None:
            return Response(status=status.HTTP_204_NO_CONTENT)
        child, interaction = claimed
        return Response(
            {
                "session": self._rendered(child),
                "interaction": InteractionSerializer(interaction).data,
            }
        )


def _valid(serializer_class: type[serializers.Serializer], request: Request) -> dict:
    serializer = serializer_class(data=request.data)
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)
