"""The GitHub client: one search request for the most-starred repositories, its errors, and parsing.

    github_top_repositories_fetch(etag=...)   # TopRepositories (a 200) or NotModified (a 304)

It knows HTTP and GitHub's answers, never the database: storing what it returns is the poll's job
(services.py). Every way of getting no usable top 100 raises a GitHubError subclass whose message
is what the trending page shows.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
from django.conf import settings
from django.utils import timezone

#: The search behind the page: every starred repository, most stars first, one page of 100.
SEARCH_PATH = "/search/repositories"
SEARCH_PARAMS = {"q": "stars:>1", "sort": "stars", "order": "desc", "per_page": "100"}
#: The REST API version the parsing below was written against (rest/about-the-rest-api/api-versions).
API_VERSION = "2022-11-28"
#: GitHub rejects requests without a User-Agent (rest/using-the-rest-api/getting-started).
USER_AGENT = "offload-trending-poll"
#: How many repositories a poll keeps: one page of the search.
TOP_N = 100
#: A 429 without Retry-After or reset headers: GitHub says to wait at least a minute
#: (rest/using-the-rest-api/rate-limits-for-the-rest-api).
DEFAULT_RATE_LIMIT_WAIT = timedelta(minutes=1)


class GitHubError(Exception):
    """The poll got no usable top 100 from GitHub; the message is what the trending page shows."""


class GitHubUnavailable(GitHubError):
    """GitHub could not be reached, timed out, or answered with a server error: worth retrying."""


class GitHubBadResponse(GitHubError):
    """GitHub answered 200 with a body we cannot use: not JSON, the wrong shape, or incomplete."""


class GitHubRejected(GitHubError):
    """GitHub refused the request (a 4xx other than a rate limit): retrying gets the same answer."""


class GitHubRateLimited(GitHubError):
    """GitHub's rate limit is used up; no request should be made before retry_at."""

    def __init__(self, message: str, *, retry_at: datetime) -> None:
        super().__init__(message)
        self.retry_at = retry_at


@dataclass(frozen=True)
class Repository:
    github_id: int
    full_name: str
    html_url: str
    description: str
    language: str
    license: str
    stars: int
    forks: int
    open_issues: int


@dataclass(frozen=True)
class TopRepositories:
    """A 200: the repositories, most starred first, and what to send back next time."""

    repositories: tuple[Repository, ...]
    etag: str
    # Set when this answer used up the rate limit: the next request must wait until then.
    retry_at: datetime | None = None


@dataclass(frozen=True)
class NotModified:
    """A 304: the repositories are those the ETag we sent stands for."""

    etag: str


def github_top_repositories_fetch(*, etag: str = "") -> TopRepositories | NotModified:
    """One search request to GITHUB_API_URL; raises a GitHubError subclass when it gives no data.

    Retrying is left to the caller (the actor's Retries middleware): this makes exactly one request.
    """
    response = _search(etag=etag)
    if response.status_code == httpx.codes.NOT_MODIFIED:
        if not etag:
            raise GitHubBadResponse("GitHub answered 304 Not Modified to a request without an ETag.")
        return NotModified(etag=response.headers.get("ETag", etag))
    _raise_for_refusal(response)
    retry_at = None
    if response.headers.get("x-ratelimit-remaining") == "0":
        retry_at = _reset_time(response)
    return TopRepositories(
        repositories=_parse_search(response), etag=response.headers.get("ETag", ""), retry_at=retry_at
    )


def _search(*, etag: str) -> httpx.Response:
    headers = {
        "Accept": "application/vnd.github+json",
        "X-GitHub-Api-Version": API_VERSION,
        "User-Agent": USER_AGENT,
    }
    if settings.GITHUB_TOKEN:
        headers["Authorization"] = f"Bearer {settings.GITHUB_TOKEN}"
    if etag:
        headers["If-None-Match"] = etag
    timeout = httpx.Timeout(settings.GITHUB_TIMEOUT_MS / 1000)
    try:
        with httpx.Client(base_url=settings.GITHUB_API_URL, headers=headers, timeout=timeout) as client:
            return client.get(SEARCH_PATH, params=SEARCH_PARAMS)
    except httpx.TimeoutException:
        raise GitHubUnavailable(f"GitHub did not answer within {settings.GITHUB_TIMEOUT_MS} ms.") from None
    except httpx.HTTPError as error:
        raise GitHubUnavailable(f"Could not reach GitHub at {settings.GITHUB_API_URL}: {error}") from None


def _raise_for_refusal(response: httpx.Response) -> None:
    """Raise the GitHubError a status other than 200 (and 304, handled before) stands for."""
    if response.status_code in (httpx.codes.FORBIDDEN, httpx.codes.TOO_MANY_REQUESTS):
        retry_at = _rate_limit_wait(response, now=timezone.now())
        if retry_at is not None:
            raise GitHubRateLimited(
                f"GitHub's rate limit is used up until {retry_at:%H:%M:%S} UTC.", retry_at=retry_at
            )
    if response.status_code >= httpx.codes.INTERNAL_SERVER_ERROR:
        raise GitHubUnavailable(f"GitHub answered {_status(response)}.")
    if response.status_code != httpx.codes.OK:
        raise GitHubRejected(f"GitHub answered {_status(response)}{_github_message(response)}")


def _rate_limit_wait(response: httpx.Response, *, now: datetime) -> datetime | None:
    """When a 403/429 is a rate limit, the time GitHub says to wait for; None for other refusals."""
    retry_after = response.headers.get("Retry-After", "").strip()
    if retry_after:
        if retry_after.isdigit():
            return now + timedelta(seconds=int(retry_after))
        try:
            return parsedate_to_datetime(retry_after).astimezone(UTC)
        except (TypeError, ValueError):
            pass
    if response.headers.get("x-ratelimit-remaining") == "0":
        return _reset_time(response) or now + DEFAULT_RATE_LIMIT_WAIT
    if response.status_code == httpx.codes.TOO_MANY_REQUESTS:
        return now + DEFAULT_RATE_LIMIT_WAIT
    return None


def _reset_time(response: httpx.Response) -> datetime | None:
    reset = response.headers.get("x-ratelimit-reset", "").strip()
    if not reset.isdigit():
        return None
    return datetime.fromtimestamp(int(reset), tz=UTC)


def _status(response: httpx.Response) -> str:
    return f"{response.status_code} {response.reason_phrase}".strip()


def _github_message(response: httpx.Response) -> str:
    try:
        message = response.json().get("message")
    except (ValueError, AttributeError):
        return "."
    return f": {message}" if isinstance(message, str) and message else "."


def _parse_search(response: httpx.Response) -> tuple[Repository, ...]:
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise GitHubBadResponse("GitHub's answer was not valid JSON.") from None
    if not isinstance(body, dict) or not isinstance(body.get("items"), list):
        raise GitHubBadResponse("GitHub's answer had no list of repositories.")
    # GitHub's search gives up on slow queries and says so: a partial top 100 would rank wrongly.
    if body.get("incomplete_results") is not False:
        raise GitHubBadResponse("GitHub's search timed out and returned incomplete results.")
    items = body["items"][:TOP_N]
    try:
        return tuple(_repository(item) for item in items)
    except (AttributeError, KeyError, TypeError, ValueError) as error:
        raise GitHubBadResponse(f"GitHub's answer had a malformed repository ({error}).") from None


def _repository(item: dict[str, Any]) -> Repository:
    license_ = item.get("license") or {}
    spdx_id = license_.get("spdx_id") or ""
    # "NOASSERTION" is GitHub's word for a license it could not identify; its name says "Other".
    license_name = (license_.get("name") or "") if spdx_id in ("", "NOASSERTION") else spdx_id
    return Repository(
        github_id=_number(item, "id"),
        full_name=_text(item, "full_name"),
        html_url=_text(item, "html_url"),
        description=item.get("description") or "",
        language=item.get("language") or "",
        license=str(license_name)[:100],
        stars=_number(item, "stargazers_count"),
        forks=_number(item, "forks_count"),
        open_issues=_number(item, "open_issues_count"),
    )


def _number(item: dict[str, Any], key: str) -> int:
    value = item[key]
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{key} is {value!r}")
    return value


def _text(item: dict[str, Any], key: str) -> str:
    value = item[key]
    if not isinstance(value, str) or not value:
        raise ValueError(f"{key} is {value!r}")
    return value
