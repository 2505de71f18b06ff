"""Counters behind the rate limits on log-ins, sign-ups and resent links (see web.accounts.throttle)."""

from __future__ import annotations

from django.db import models


class RateLimitCounter(models.Model):
    """How often one client or address did one thing in the current window of one limit.

    Kept in the database, the one store every web process (and Lambda instance) shares, and
    incremented with one atomic UPDATE, so concurrent requests never undercount.
    """

    #: The limit and who it counts ("LIMITER/login-ip/<digest>/60/1/hour"); addresses are hashed.
    key = models.CharField(max_length=255, primary_key=True)
    count = models.PositiveIntegerField()
    #: The window ends, and the count starts again from zero, at this time.
    expires_at = models.DateTimeField(db_index=True)

    def __str__(self) -> str:
        return f"{self.key}: {self.count} until {self.expires_at:%Y-%m-%d %H:%M:%S}"
