"""A storage for the `limits` library in Django's database: shared by every process, atomic.

`limits` counts with Redis or Memcached; offload runs on a database and SQS only, and a per-process
memory store would give each gunicorn worker (and each Lambda instance) a limit of its own. The
fixed-window strategy needs only incr/get/get_expiry/clear, which map onto one row per key:

    UPDATE ... SET count = CASE WHEN expires_at > now THEN count + n ELSE n END, ...

runs as one statement, so two requests that increment at once both count: the row lock (Postgres)
or the write lock (SQLite) orders them. A key seen for the first time is inserted; if another request
inserted it first, the update runs again. Expired rows are deleted whenever a new key is inserted,
which keeps the table to about the keys of the current windows.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta

from django.db import DatabaseError, IntegrityError, models, transaction
from django.db.models import Case, F, Value, When
from django.utils import timezone
from limits.storage import Storage

from web.accounts.models import RateLimitCounter


class DatabaseStorage(Storage):
    """Rate-limit counters in the `RateLimitCounter` table, for FixedWindowRateLimiter."""

    STORAGE_SCHEME = None  # built directly, never from a storage URI

    @property
    def base_exceptions(self) -> type[Exception]:
        return DatabaseError

    def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        now = timezone.now()
        with transaction.atomic():
            if not self._add(key, now=now, expiry=expiry, amount=amount):
                try:
                    with transaction.atomic():
                        RateLimitCounter.objects.create(
                            key=key, count=amount, expires_at=now + timedelta(seconds=expiry)
                        )
                except IntegrityError:  # inserted by a concurrent request since our update
                    self._add(key, now=now, expiry=expiry, amount=amount)
                else:
                    RateLimitCounter.objects.filter(expires_at__lte=now).delete()
                    return amount
            return RateLimitCounter.objects.values_list("count", flat=True).get(key=key)

    @staticmethod
    def _add(key: str, *, now: datetime, expiry: int, amount: int) -> int:
        """Add to a live count, or start a new window on an expired one; the number of rows updated."""
        live = When(expires_at__gt=now, then=F("count") + amount)
        return RateLimitCounter.objects.filter(key=key).update(
            count=Case(live, default=Value(amount), output_field=models.PositiveIntegerField()),
            expires_at=Case(
                When(expires_at__gt=now, then=F("expires_at")),
                default=Value(now + timedelta(seconds=expiry)),
                output_field=models.DateTimeField(),
            ),
        )

    def get(self, key: str) -> int:
        row = RateLimitCounter.objects.filter(key=key, expires_at__gt=timezone.now()).first()
        return row.count if row else 0

    def get_expiry(self, key: str) -> float:
        row = RateLimitCounter.objects.filter(key=key, expires_at__gt=timezone.now()).first()
        return row.expires_at.timestamp() if row else time.time()

    def check(self) -> bool:
        try:
            RateLimitCounter.objects.exists()
        except DatabaseError:
            return False
        return True

    def reset(self) -> int | None:
        deleted, _ = RateLimitCounter.objects.all().delete()
        return deleted

    def clear(self, key: str) -> None:
        RateLimitCounter.objects.filter(key=key).delete()
