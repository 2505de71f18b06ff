"""The GitHub client: one search request for the most-starred repositories, its errors, and parsing.

    github_top_repositories_fetch(etag=...)   # TopRepositories (a 200) or NotModified (a 304)

It knows HTTP and GitHub's answers, never the database: storing what it returns is the poll's job
(services.py). Every way of getting no usable top 100 raises a GitHubError subclass whose message
is a plain sentence for the trending page; its `detail` (the low-level cause) is for logs and /ops/.

An answer is read as a stream, so neither its size (GITHUB_MAX_RESPONSE_BYTES, counted after
decompression) nor its duration (GITHUB_DEADLINE_MS, connecting to the last byte) can grow without
bound: a server that drips bytes is cut off at the deadline, give or take one read timeout.
"""

from __future__ import annotations

import json
import time
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
#: Longest text each stored field takes (the columns of RepositorySnapshot); Postgres refuses longer.
MAX_FULL_NAME = 200
MAX_URL = 300
MAX_LANGUAGE = 100
MAX_LICENSE = 100
#: Largest number an integer column holds (stars, forks, open issues) on every database.
MAX_COUNT = 2**31 - 1


class GitHubError(Exception):
    """The poll got no usable top 100 from GitHub; the message is what the trending page shows."""

    def __init__(self, message: str, *, detail: str = "") -> None:
        super().__init__(message)
        #: The low-level cause, for logs and operators; never shown to visitors.
        self.detail = detail


class GitHubUnavailable(GitHubError):
    """GitHub could not be reached, timed out, or answered with a server error: worth retrying."""


class GitHubBadResponse(GitHubError):
    """GitHub answered 200 with a body we cannot use: not JSON, the wrong shape, or incomplete."""


class GitHubRejected(GitHubError):
    """GitHub refused the request (a 4xx other than a rate limit): retrying gets the same answer."""


class GitHubRateLimited(GitHubError):
    """GitHub's rate limit is used up; no request should be made before retry_at."""

    def __init__(self, message: str, *, retry_at: datetime, detail: str = "") -> None:
        super().__init__(message, detail=detail)
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


@dataclass(frozen=True)
class _Answer:
    """GitHub's answer, its body read whole (within the size cap and the deadline)."""

    status_code: int
    reason_phrase: str
    headers: httpx.Headers
    body: bytes


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


def _search(*, etag: str) -> _Answer:
    headers = {
        "Accept": "application/vnd.github+json",
        "X-GitHub-Api-Version": API_VERSION,
        "User-Agent": USER_AGENT,
    }
    if settings.GITHUB_TOKEN:
        headers["Authorization"] = f"Bearer {settings.GITHUB_TOKEN}"
    if etag:
        headers["If-None-Match"] = etag
    deadline_ms = settings.GITHUB_DEADLINE_MS
    deadline = time.monotonic() + deadline_ms / 1000
    timeout_ms = min(settings.GITHUB_TIMEOUT_MS, deadline_ms)
    try:
        with (
            httpx.Client(
                base_url=settings.GITHUB_API_URL, headers=headers, timeout=httpx.Timeout(timeout_ms / 1000)
            ) as client,
            client.stream("GET", SEARCH_PATH, params=SEARCH_PARAMS) as response,
        ):
            body = _read(response, deadline=deadline, deadline_ms=deadline_ms)
    except httpx.TimeoutException as error:
        raise GitHubUnavailable(
            f"GitHub did not answer within {timeout_ms} ms.", detail=_describe(error)
        ) from None
    except httpx.HTTPError as error:
        raise GitHubUnavailable("Could not reach GitHub.", detail=_describe(error)) from None
    return _Answer(response.status_code, response.reason_phrase, response.headers, body)


def _read(response: httpx.Response, *, deadline: float, deadline_ms: int) -> bytes:
    """The whole body, or GitHubBadResponse past the size cap, or GitHubUnavailable past the deadline."""
    cap = settings.GITHUB_MAX_RESPONSE_BYTES
    too_large = GitHubBadResponse(
        f"GitHub's answer was larger than the {cap:,} bytes the poll accepts.",
        detail=f"Content-Length: {response.headers.get('Content-Length', 'not sent')}",
    )
    declared = response.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > cap:
        raise too_large
    body = bytearray()
    for chunk in response.iter_bytes():
        body += chunk
        if len(body) > cap:
            raise too_large
        if time.monotonic() > deadline:
            raise GitHubUnavailable(
                f"GitHub did not finish answering within {deadline_ms} ms.",
                detail=f"{len(body):,} bytes had arrived.",
            )
    return bytes(body)


def _describe(error: httpx.HTTPError) -> str:
    try:
        where = f" ({error.request.method} {error.request.url})"
    except RuntimeError:  # an error raised before the request was built has none
        where = ""
    return f"{type(error).__name__}: {error}{where}"


def _raise_for_refusal(response: _Answer) -> None:
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


def _rate_limit_wait(response: _Answer, *, now: datetime) -> datetime | None:
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


def _reset_time(response: _Answer) -> datetime | None:
    reset = response.headers.get("x-ratelimit-reset", "").strip()
    if not reset.isdigit():
        return None
    return datetime.fromtimestamp(int(reset), tz=UTC)


def _status(response: _Answer) -> str:
    return f"{response.status_code} {response.reason_phrase}".strip()


def _github_message(response: _Answer) -> str:
    try:
        message = json.loads(response.body).get("message")
    except (ValueError, AttributeError):
        return "."
    return f": {message}" if isinstance(message, str) and message else "."


def _parse_search(response: _Answer) -> tuple[Repository, ...]:
    try:
        body = json.loads(response.body)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise GitHubBadResponse("GitHub's answer was not valid JSON.", detail=str(error)) from None
    if not isinstance(body, dict) or not isinstance(body.get("items"), list):
        raise GitHubBadResponse("GitHub's answer had no list of repositories.")
    # GitHub's search gives up on slow queries and says so: a partial top 100 would rank wrongly.
    if body.get("incomplete_results") is not False:
        raise GitHubBadResponse("GitHub's search timed out and returned incomplete results.")
    items = body["items"][:TOP_N]
    try:
        return tuple(_repository(item) for item in items)
    except (AttributeError, KeyError, TypeError, ValueError) as error:
        raise GitHubBadResponse(
            "GitHub's answer had a malformed repository.", detail=f"{type(error).__name__}: {error}"
        ) from None


def _repository(item: dict[str, Any]) -> Repository:
    license_ = item.get("license") or {}
    spdx_id = license_.get("spdx_id") or ""
    # "NOASSERTION" is GitHub's word for a license it could not identify; its name says "Other".
    license_name = (license_.get("name") or "") if spdx_id in ("", "NOASSERTION") else spdx_id
    return Repository(
        github_id=_number(item, "id", maximum=2**63 - 1),
        full_name=_text(item, "full_name", max_length=MAX_FULL_NAME),
        html_url=_text(item, "html_url", max_length=MAX_URL),
        description=_clean(item.get("description")),
        language=_clean(item.get("language"))[:MAX_LANGUAGE],
        license=_clean(license_name)[:MAX_LICENSE],
        stars=_number(item, "stargazers_count"),
        forks=_number(item, "forks_count"),
        open_issues=_number(item, "open_issues_count"),
    )


def _number(item: dict[str, Any], key: str, *, maximum: int = MAX_COUNT) -> int:
    value = item[key]
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= maximum:
        raise ValueError(f"{key} is {value!r}")
    return value


def _text(item: dict[str, Any], key: str, *, max_length: int) -> str:
    value = item[key]
    if not isinstance(value, str) or not value or len(value) > max_length or "\x00" in value:
        raise ValueError(f"{key} is {value!r:.80}")
    return value


def _clean(value: object) -> str:
    """GitHub's optional text: null becomes "", and NUL characters (which Postgres cannot store) go."""
    return str(value or "").replace("\x00", "")
