"""Reading the stored polls: what the trending page shows, and what the next poll sends GitHub."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from web.trending.models import Poll, RepositorySnapshot

#: Polls whose rows are the current top 100.
DATA_STATUSES = (Poll.Status.CHANGED, Poll.Status.UNCHANGED)
#: Polls that confirmed the current rows: a 304 says the last rows still stand.
SUCCESS_STATUSES = (*DATA_STATUSES, Poll.Status.NOT_MODIFIED)
#: Polls that ended without confirming anything.
PROBLEM_STATUSES = (Poll.Status.FAILED, Poll.Status.RATE_LIMITED)


@dataclass(frozen=True)
class Trending:
    """What /trending/ shows."""

    repositories: list[RepositorySnapshot]
    # When the shown rows were fetched, and when GitHub last confirmed them (a 304 is newer).
    fetched_at: datetime | None
    checked_at: datetime | None
    # The latest poll when it failed or was rate limited after the last success: the page says so.
    problem: Poll | None


def poll_latest_with_data() -> Poll | None:
    """The latest poll that stored rows: its rows are the current top 100, its ETag the one to send."""
    return Poll.objects.filter(status__in=DATA_STATUSES).order_by("-started_at", "-pk").first()


def poll_rate_limit_hold(*, now: datetime) -> datetime | None:
    """The time GitHub asked us to wait for, if the latest finished poll set one still ahead."""
    latest = Poll.objects.exclude(status=Poll.Status.RUNNING).order_by("-started_at", "-pk").first()
    if latest is None or latest.retry_at is None or latest.retry_at <= now:
        return None
    return latest.retry_at


def trending_get() -> Trending:
    """The top 100 from the latest successful poll, and whether a later poll went wrong."""
    data = poll_latest_with_data()
    latest_success = Poll.objects.filter(status__in=SUCCESS_STATUSES).order_by("-started_at", "-pk").first()
    problem = Poll.objects.filter(status__in=PROBLEM_STATUSES)
    if latest_success is not None:
        problem = problem.filter(started_at__gt=latest_success.started_at)
    repositories = list(data.snapshots.order_by("rank")) if data is not None else []
    return Trending(
        repositories=repositories,
        fetched_at=data.finished_at if data is not None else None,
        checked_at=latest_success.finished_at if latest_success is not None else None,
        problem=problem.order_by("-started_at", "-pk").first(),
    )
