"""The GitHub poll: ask the client for the top 100, store what it returns, and ask for a new report.

    trending_refresh()               # what the scheduled job does: one poll, then a report if it changed
    poll_github_top_repositories()   # one poll: fetch the top 100, store a snapshot, return the Poll

Only the poll actor calls GitHub; pages read the stored rows (selectors.py). Every failure keeps the
previous rows and is recorded on the Poll, so the trending page can say what went wrong.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

import dramatiq
from django.db import transaction
from django.utils import timezone
from dramatiq.errors import ActorNotFound

from web.core.enqueue import enqueue_on_commit
from web.trending.github import (
    GitHubError,
    GitHubRateLimited,
    NotModified,
    Repository,
    TopRepositories,
    github_top_repositories_fetch,
)
from web.trending.models import Poll, RepositorySnapshot
from web.trending.selectors import poll_latest_with_data, poll_rate_limit_hold

logger = logging.getLogger(__name__)

#: The actor that recomputes the report from the snapshots; asked for after every poll that changed them.
REPORT_ACTOR = "regenerate_report"
#: The fields compared to tell a changed top 100 from an unchanged one.
_COMPARED = ("github_id", "full_name", "description", "language", "license", "stars", "forks", "open_issues")


def trending_refresh() -> Poll | None:
    """Poll GitHub; when the top 100 changed, ask for the report to be recomputed from it.

    Returns the poll (None when skipped) and raises the poll's GitHubError, as
    poll_github_top_repositories does.
    """
    poll = poll_github_top_repositories()
    if poll is not None and poll.status == Poll.Status.CHANGED:
        _report_request()
    return poll


def _report_request() -> None:
    # By name: the report is another app's, and the poll must work without it.
    try:
        actor = dramatiq.get_broker().get_actor(REPORT_ACTOR)
    except ActorNotFound:
        logger.error(
            "The GitHub data changed but no actor named %r is declared to update the report.", REPORT_ACTOR
        )
        return
    enqueue_on_commit(actor)


def poll_github_top_repositories() -> Poll | None:
    """Fetch the top 100 and store them as a snapshot; the finished Poll, or None when skipped.

    Skips (no request, no Poll) while GitHub's last answer asked us to wait. Otherwise records a
    Poll whatever happens: changed or unchanged (rows stored), not_modified (a 304: the stored rows
    stand), or rate_limited/failed (the previous rows stand), and then re-raises the GitHubError,
    so the caller decides about retrying.
    """
    hold = poll_rate_limit_hold(now=timezone.now())
    if hold is not None:
        logger.info("Skipping the GitHub poll: GitHub asked us to wait until %s.", hold.isoformat())
        return None

    previous = poll_latest_with_data()
    poll = Poll.objects.create(started_at=timezone.now())
    try:
        result = github_top_repositories_fetch(etag=previous.etag if previous else "")
    except GitHubRateLimited as error:
        _poll_finish(poll, status=Poll.Status.RATE_LIMITED, error=str(error), retry_at=error.retry_at)
        logger.warning("GitHub poll %r rate limited until %s.", poll.pk, error.retry_at.isoformat())
        raise
    except GitHubError as error:
        # The page shows the plain message; the cause goes to this one line (no traceback: a failing
        # GitHub is expected, and the actor's retries log nothing more).
        _poll_finish(poll, status=Poll.Status.FAILED, error=str(error))
        logger.warning(
            "GitHub poll %r failed: %s%s", poll.pk, error, f" ({error.detail})" if error.detail else ""
        )
        raise

    if isinstance(result, NotModified):
        _poll_finish(poll, status=Poll.Status.NOT_MODIFIED, etag=result.etag)
        logger.info("GitHub poll %r: not modified since poll %r.", poll.pk, previous.pk if previous else None)
        return poll
    _store_snapshot(poll, result, previous=previous)
    logger.info("GitHub poll %r stored %d repositories (%s).", poll.pk, len(result.repositories), poll.status)
    return poll


def _store_snapshot(poll: Poll, result: TopRepositories, *, previous: Poll | None) -> None:
    """Store a 200's repositories as the poll's rows and finish it as changed or unchanged."""
    changed = previous is None or _rows(result.repositories) != _stored_rows(previous)
    with transaction.atomic():
        fetched_at = timezone.now()
        RepositorySnapshot.objects.bulk_create(
            _snapshot(poll, fetched_at, rank, repository)
            for rank, repository in enumerate(result.repositories, start=1)
        )
        _poll_finish(
            poll,
            status=Poll.Status.CHANGED if changed else Poll.Status.UNCHANGED,
            etag=result.etag,
            repository_count=len(result.repositories),
            retry_at=result.retry_at,
            finished_at=fetched_at,
        )


def _snapshot(poll: Poll, fetched_at: datetime, rank: int, repository: Repository) -> RepositorySnapshot:
    return RepositorySnapshot(
        poll=poll,
        fetched_at=fetched_at,
        rank=rank,
        github_id=repository.github_id,
        full_name=repository.full_name,
        html_url=repository.html_url,
        description=repository.description,
        language=repository.language,
        license=repository.license,
        stars=repository.stars,
        forks=repository.forks,
        open_issues=repository.open_issues,
    )


def _poll_finish(
    poll: Poll,
    *,
    status: str,
    error: str = "",
    etag: str = "",
    repository_count: int = 0,
    retry_at: datetime | None = None,
    finished_at: datetime | None = None,
) -> None:
    poll.status = status
    poll.error = error
    poll.etag = etag
    poll.repository_count = repository_count
    poll.retry_at = retry_at
    poll.finished_at = finished_at or timezone.now()
    poll.save(update_fields=["status", "error", "etag", "repository_count", "retry_at", "finished_at"])


def _rows(repositories: tuple[Repository, ...]) -> list[tuple[Any, ...]]:
    return [tuple(getattr(repository, field) for field in _COMPARED) for repository in repositories]


def _stored_rows(poll: Poll) -> list[tuple[Any, ...]]:
    return list(poll.snapshots.order_by("rank").values_list(*_COMPARED))
