"""Sums the database makes for /ops/, so the page never loads a day of task runs to count them.

A percentile:

PostgreSQL has it built in (`percentile_disc`, an ordered-set aggregate). SQLite has none, so each new
SQLite connection gets one written in Python (`offload_percentile_disc`): it still sees every value,
but inside the query, without making a model row or parsing a timestamp for each. And a timestamp
in epoch seconds, for counting runs per bucket of time in the query.
"""

from __future__ import annotations

import math
from typing import Any

from django.db.backends.signals import connection_created
from django.db.models import Aggregate, Func, IntegerField


def percentile(ordered: list[int], fraction: float) -> int | None:
    """The smallest of the sorted values that at least `fraction` of them do not exceed (nearest rank),
    which is what PostgreSQL's percentile_disc gives."""
    if not ordered:
        return None
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


class PercentileDisc(Aggregate):
    """percentile_disc(fraction) of an integer column, ignoring NULLs; NULL for no rows."""

    function = "percentile_disc"
    template = "%(function)s(%(fraction)s) WITHIN GROUP (ORDER BY %(expressions)s)"
    output_field = IntegerField()

    def __init__(self, expression: Any, *, fraction: float, **extra: Any) -> None:
        if not 0 <= fraction <= 1:
            raise ValueError(f"fraction must be between 0 and 1, not {fraction!r}.")
        super().__init__(expression, fraction=float(fraction), **extra)

    def as_sqlite(self, compiler: Any, connection: Any, **extra_context: Any) -> Any:
        return self.as_sql(
            compiler,
            connection,
            function="offload_percentile_disc",
            template="%(function)s(%(expressions)s, %(fraction)s)",
            **extra_context,
        )


class _SQLitePercentileDisc:
    """The SQLite side of PercentileDisc (sqlite3's create_aggregate protocol)."""

    def __init__(self) -> None:
        self.values: list[int] = []
        self.fraction = 0.5

    def step(self, value: int | None, fraction: float) -> None:
        self.fraction = fraction
        if value is not None:
            self.values.append(value)

    def finalize(self) -> int | None:
        return percentile(sorted(self.values), self.fraction)


def _register_on_sqlite(sender: Any, connection: Any, **kwargs: Any) -> None:
    if connection.vendor == "sqlite":
        connection.connection.create_aggregate("offload_percentile_disc", 2, _SQLitePercentileDisc)


def register() -> None:
    """Give each SQLite connection opened from now on the percentile aggregate (called at start)."""
    connection_created.connect(_register_on_sqlite, dispatch_uid="offload_percentile_disc")


class EpochSeconds(Func):
    """A timestamp as whole seconds since 1970 (UTC), computed by the database."""

    output_field = IntegerField()

    def as_sqlite(self, compiler: Any, connection: Any, **extra_context: Any) -> Any:
        # SQLite's own julianday() (2440587.5 is 1970-01-01 in Julian days): Django's date functions on
        # SQLite call back into Python for every row.
        return self.as_sql(
            compiler, connection, template="CAST((julianday(%(expressions)s) - 2440587.5) * 86400 AS INTEGER)"
        )

    def as_postgresql(self, compiler: Any, connection: Any, **extra_context: Any) -> Any:
        return self.as_sql(
            compiler, connection, template="CAST(EXTRACT(EPOCH FROM %(expressions)s) AS BIGINT)"
        )
