"""Poll GitHub for the top 100 starred repositories (enqueued by the scheduler every 10 minutes).

Retries are dramatiq's: an unreachable GitHub, a server error or an unusable body is retried with
the Retries middleware's backoff; a rate limit reschedules the message for when GitHub allows the
next request; a refusal (bad token, say) is not retried, since the same request gets the same answer.
These failures are expected, so each is the poll's one log line, never a worker traceback.
"""

from __future__ import annotations

import logging
import math

import dramatiq
from django.utils import timezone

from web.trending.github import GitHubError, GitHubRateLimited, GitHubRejected
from web.trending.services import trending_refresh

logger = logging.getLogger(__name__)

#: Margin after GitHub's reset time, so the retried request does not arrive a moment early.
RATE_LIMIT_MARGIN_MS = 1_000
#: A poll stuck longer than this (three timed-out requests would be 30 s) is stopped and retried.
TIME_LIMIT_MS = 2 * 60 * 1000


@dramatiq.actor(max_retries=3, min_backoff=30_000, max_backoff=5 * 60 * 1000, time_limit=TIME_LIMIT_MS)
def poll_github_top_repos() -> None:
    try:
        trending_refresh()
    except GitHubRateLimited as error:
        delay = max(0, math.ceil((error.retry_at - timezone.now()).total_seconds() * 1000))
        raise dramatiq.Retry(str(error), delay=delay + RATE_LIMIT_MARGIN_MS) from None
    except GitHubRejected as error:
        logger.error("GitHub refused the poll; not retrying: %s", error)
    except GitHubError as error:
        # Retry, not the error itself: dramatiq logs any other exception with its traceback.
        raise dramatiq.Retry(f"{error} {error.detail}".strip()) from None
