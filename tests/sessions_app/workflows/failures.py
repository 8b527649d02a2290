"""Ways to make creating one child session fail, as it would in production."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator

from django.core.exceptions import ValidationError
from django.db import connection

from components_app.models import Component
from sessions_app.models import Session

INJECTED_DB_ERROR = "injected insert failure"
INJECTED_VALIDATION_ERROR = "injected validation failure"


@contextlib.contextmanager
def rejected_inserts(components: Iterable[Component]) -> Iterator[None]:
    """A database trigger that refuses to insert a session for any of ``components``."""
    ids = [component.pk for component in components]
    table = Session._meta.db_table
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            listed = ", ".join(f"'{pk}'" for pk in ids)
            cursor.execute(
                f"""CREATE FUNCTION reject_child_session() RETURNS trigger AS $$
                BEGIN
                  IF NEW.component_id IN ({listed}) THEN
                    RAISE EXCEPTION '{INJECTED_DB_ERROR}';
                  END IF;
                  RETURN NEW;
                END $$ LANGUAGE plpgsql"""
            )
            cursor.execute(
                f"CREATE TRIGGER reject_child_session BEFORE INSERT ON {table} "
                "FOR EACH ROW EXECUTE FUNCTION reject_child_session()"
            )
        else:
            listed = ", ".join(f"'{pk.hex}'" for pk in ids)
            cursor.execute(
                f"CREATE TRIGGER reject_child_session BEFORE INSERT ON {table} "
                f"WHEN NEW.component_id IN ({listed}) "
                f"BEGIN SELECT RAISE(ABORT, '{INJECTED_DB_ERROR}'); END"
            )
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute(
                f"DROP TRIGGER IF EXISTS reject_child_session ON {table}"
                if connection.vendor == "postgresql"
                else "DROP TRIGGER IF EXISTS reject_child_session"
            )
            if connection.vendor == "postgresql":
                cursor.execute("DROP FUNCTION IF EXISTS reject_child_session()")


@contextlib.contextmanager
def invalid_children(monkeypatch, names: Iterable[str]) -> Iterator[None]:
    """Model validation that refuses a child session for components with these names."""
    refused = set(names)
    original_clean = Session.clean

    def clean(self: Session) -> None:
        original_clean(self)
        if self.parent_session_id and self.component.name in refused:
            raise ValidationError({"component": INJECTED_VALIDATION_ERROR})

    monkeypatch.setattr(Session, "clean", clean)
    yield
