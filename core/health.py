"""``GET /health/``: what a load balancer polls before sending a process traffic."""

from __future__ import annotations

from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from core.cache import cache_state
from core.unavailable import DATABASE_ERRORS, RETRY_AFTER_SECONDS

# Migrations cannot become unapplied under a running process (a deploy that adds some starts
# new processes), so once found applied they are not looked up again: later polls cost one
# ``SELECT 1``.
_migrations_applied = False


def unapplied_migrations() -> list[str]:
    """The migrations known to the code but not applied to the database, as app.name."""
    executor = MigrationExecutor(connection)
    plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
    return [f"{migration.app_label}.{migration.name}" for migration, _ in plan]


@never_cache
@require_safe
def health(request: HttpRequest) -> JsonResponse:
    """200 ``{"status": "ok", ...}`` when the database answers and every migration is
    applied; else 503 saying which check failed. ``cache`` says whether the shared cache
    answers, without failing the check. Needs no credentials and sets no cookie."""
    global _migrations_applied
    checks: dict[str, str] = {}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        checks["database"] = "ok"
        if not _migrations_applied:
            unapplied = unapplied_migrations()
            _migrations_applied = not unapplied
        checks["migrations"] = (
            "ok" if _migrations_applied else f"{len(unapplied)} unapplied: {', '.join(unapplied)}"
        )
    except DATABASE_ERRORS as error:
        checks["database"] = f"unavailable: {type(error).__name__}"
        checks.setdefault("migrations", "unknown")
    healthy = all(value == "ok" for value in checks.values())
    # Reported, not judged: without the shared cache the API still serves (its throttles
    # uncounted), so a proxy must not take every instance out for it.
    checks["cache"] = cache_state()
    response = JsonResponse({"status": "ok" if healthy else "unavailable", **checks})
    if not healthy:
        response.status_code = 503
        response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


# The product's mark, drawn: a browser asks for /favicon.ico on every page, the API's too.
FAVICON = (
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16">'
    '<rect width="16" height="16" rx="3" fill="#2f6f91"/>'
    '<path d="M4 4h8v2H6v1h6v5H4v-2h6V9H4z" fill="#fff"/></svg>'
)


@require_safe
def favicon(request: HttpRequest) -> HttpResponse:
    response = HttpResponse(FAVICON, content_type="image/svg+xml")
    response["Cache-Control"] = "public, max-age=86400"
    return response
