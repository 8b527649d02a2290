"""Database expressions the models and the pages share."""

from __future__ import annotations

from django.db.models import FloatField, Func


class Seconds(Func):
    """``end - start`` in seconds, computed by the database itself (no Python function per
    row, as Django's own temporal subtraction is on SQLite)."""

    output_field = FloatField()

    def as_sql(self, compiler, connection, **extra):  # PostgreSQL and the rest
        end, start = (compiler.compile(e) for e in self.get_source_expressions())
        return f"EXTRACT(EPOCH FROM ({end[0]} - {start[0]}))", [*end[1], *start[1]]

    def as_sqlite(self, compiler, connection, **extra):
        end, start = (compiler.compile(e) for e in self.get_source_expressions())
        # julianday() is a double counting days: about 20 microseconds of noise on a date of
        # today, so the seconds are rounded to the millisecond.
        return f"ROUND((julianday({end[0]}) - julianday({start[0]})) * 86400.0, 3)", [
            *end[1],
            *start[1],
        ]
