"""The GitHub client and the poll service, against a real HTTP server on loopback playing GitHub."""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from tests.web.trending.fake_github import FakeGitHub, repository_items, search_body
from web.trending.github import GitHubBadResponse, GitHubRateLimited, GitHubRejected, GitHubUnavailable
from web.trending.models import Poll, RepositorySnapshot
from web.trending.selectors import trending_get
from web.trending.services import poll_github_top_repositories

pytestmark = pytest.mark.django_db


def _poll_with_data(github: FakeGitHub, *, etag: str = '"v1"') -> Poll:
    github.answer(200, search_body(repository_items()), {"ETag": etag})
    poll = poll_github_top_repositories()
    assert poll is not None
    return poll


def test_a_poll_stores_the_top_100_with_nulls_as_empty_text_and_non_ascii_names_intact(github):
    poll = _poll_with_data(github)

    assert poll.status == Poll.Status.CHANGED
    assert poll.repository_count == 100
    rows = list(RepositorySnapshot.objects.filter(poll=poll).order_by("rank"))
    assert [row.rank for row in rows] == list(range(1, 101))
    assert rows[0].stars > rows[-1].stars
    third, fourth, fifth, seventh = rows[2], rows[3], rows[4], rows[6]
    assert third.description == ""  # GitHub sent null
    assert fourth.language == ""
    assert fifth.license == ""
    assert rows[1].license == "Other"  # "NOASSERTION" shows as the license's name
    assert rows[0].license == "MIT"
    assert seventh.full_name == "café/проект-7"
    assert rows[0].description == "Описание №1 — naïve 🚀"
    assert rows[0].html_url == "https://github.com/日本語-org/projekt-1"


def test_the_request_asks_for_the_most_starred_repositories_the_way_github_documents(github, settings):
    settings.GITHUB_TOKEN = "ghp_test_token"
    _poll_with_data(github)

    (request,) = github.received
    assert request.path == "/search/repositories"
    assert request.query == {"q": ["stars:>1"], "sort": ["stars"], "order": ["desc"], "per_page": ["100"]}
    assert request.headers["Accept"] == "application/vnd.github+json"
    assert request.headers["X-GitHub-Api-Version"] == "2022-11-28"
    assert request.headers["User-Agent"]
    assert request.headers["Authorization"] == "Bearer ghp_test_token"
    assert "If-None-Match" not in request.headers


def test_the_etag_goes_back_and_a_304_keeps_the_stored_rows_as_a_success(github):
    first = _poll_with_data(github, etag='W/"abc123"')
    github.answer(304, headers={"ETag": 'W/"abc123"'})

    second = poll_github_top_repositories()

    assert github.received[1].headers["If-None-Match"] == 'W/"abc123"'
    assert second is not None
    assert second.status == Poll.Status.NOT_MODIFIED
    assert RepositorySnapshot.objects.count() == 100
    page = trending_get()
    assert [row.poll_id for row in page.repositories] == [first.pk] * 100
    assert page.checked_at == second.finished_at
    assert page.problem is None


def test_a_poll_with_the_same_data_is_unchanged_and_one_with_new_stars_is_changed(github):
    _poll_with_data(github, etag='"v1"')
    github.answer(200, search_body(repository_items()), {"ETag": '"v1b"'})
    github.answer(200, search_body(repository_items(stars_offset=7)), {"ETag": '"v2"'})

    same = poll_github_top_repositories()
    newer = poll_github_top_repositories()

    assert same is not None
    assert same.status == Poll.Status.UNCHANGED
    assert newer is not None
    assert newer.status == Poll.Status.CHANGED
    assert github.received[2].headers["If-None-Match"] == '"v1b"'


def test_a_403_with_no_rate_limit_left_records_the_reset_time_and_later_polls_wait_for_it(github):
    previous = _poll_with_data(github)
    reset = int(time.time()) + 3600
    github.answer(
        403,
        {"message": "API rate limit exceeded for 127.0.0.1."},
        {"x-ratelimit-limit": "10", "x-ratelimit-remaining": "0", "x-ratelimit-reset": str(reset)},
    )

    with pytest.raises(GitHubRateLimited) as raised:
        poll_github_top_repositories()

    assert raised.value.retry_at == datetime.fromtimestamp(reset, tz=UTC)
    limited = Poll.objects.get(status=Poll.Status.RATE_LIMITED)
    assert limited.retry_at == raised.value.retry_at
    assert "rate limit" in limited.error
    # Before the reset the next poll does not ask GitHub at all.
    assert poll_github_top_repositories() is None
    assert len(github.received) == 2
    page = trending_get()
    assert page.problem == limited
    assert {row.poll_id for row in page.repositories} == {previous.pk}


def test_a_429_with_retry_after_waits_that_many_seconds(github):
    github.answer(429, {"message": "You have exceeded a secondary rate limit."}, {"Retry-After": "42"})
    before = timezone.now()

    with pytest.raises(GitHubRateLimited) as raised:
        poll_github_top_repositories()

    assert before + timedelta(seconds=41) <= raised.value.retry_at <= timezone.now() + timedelta(seconds=42)


@pytest.mark.parametrize(
    ("status", "headers"),
    [(429, {}), (403, {"x-ratelimit-remaining": "0"})],
    ids=["429-without-headers", "403-without-reset"],
)
def test_a_rate_limit_that_names_no_time_waits_a_minute_as_github_advises(github, status, headers):
    github.answer(status, {"message": "rate limited"}, headers)
    before = timezone.now()

    with pytest.raises(GitHubRateLimited) as raised:
        poll_github_top_repositories()

    assert before + timedelta(seconds=59) <= raised.value.retry_at <= timezone.now() + timedelta(seconds=60)


def test_a_403_that_is_not_a_rate_limit_is_a_refusal_that_is_not_retried(github):
    github.answer(403, {"message": "Resource protected by organization SAML enforcement."})

    with pytest.raises(GitHubRejected, match="SAML"):
        poll_github_top_repositories()

    assert Poll.objects.get().status == Poll.Status.FAILED


@pytest.mark.parametrize(
    ("status", "body", "error", "shown"),
    [
        (
            500,
            b"<html>Internal error</html>",
            GitHubUnavailable,
            "GitHub answered 500 Internal Server Error.",
        ),
        (200, b'{"items": [', GitHubBadResponse, "GitHub's answer was not valid JSON."),
        (200, b"\xff\xfe not json", GitHubBadResponse, "GitHub's answer was not valid JSON."),
        (200, b'{"total_count": 1}', GitHubBadResponse, "GitHub's answer had no list of repositories."),
        (
            200,
            search_body(repository_items(), incomplete=True),
            GitHubBadResponse,
            "GitHub's search timed out and returned incomplete results.",
        ),
        (
            200,
            search_body([{**repository_items(1)[0], "stargazers_count": "many"}]),
            GitHubBadResponse,
            "GitHub's answer had a malformed repository.",
        ),
    ],
    ids=["server-error", "truncated-json", "not-utf8", "no-items", "incomplete-results", "malformed-item"],
)
def test_a_failed_poll_keeps_the_previous_rows_and_says_what_went_wrong(github, status, body, error, shown):
    previous = _poll_with_data(github)
    github.answer(status, body)

    with pytest.raises(error):
        poll_github_top_repositories()

    failed = Poll.objects.exclude(pk=previous.pk).get()
    assert failed.status == Poll.Status.FAILED
    assert failed.error == shown
    assert failed.finished_at is not None
    page = trending_get()
    assert page.problem == failed
    assert len(page.repositories) == 100
    assert {row.poll_id for row in page.repositories} == {previous.pk}
    # The next poll still sends the ETag of the rows it has.
    github.answer(304)
    assert poll_github_top_repositories().status == Poll.Status.NOT_MODIFIED


def test_an_unreachable_github_is_a_failure_worth_retrying(github, settings):
    with FakeGitHub() as closed:
        url = closed.url
    settings.GITHUB_API_URL = url  # nothing listens there any more

    with pytest.raises(GitHubUnavailable, match="Could not reach GitHub"):
        poll_github_top_repositories()

    poll = Poll.objects.get()
    assert poll.status == Poll.Status.FAILED
    assert poll.error == "Could not reach GitHub.", "the page says it plainly; the cause is logged"


def test_an_answer_that_used_the_last_request_of_the_rate_limit_makes_the_next_poll_wait(github):
    reset = int(time.time()) + 600
    github.answer(
        200,
        search_body(repository_items()),
        {"ETag": '"v1"', "x-ratelimit-remaining": "0", "x-ratelimit-reset": str(reset)},
    )

    stored = poll_github_top_repositories()

    assert stored is not None
    assert stored.status == Poll.Status.CHANGED
    assert stored.retry_at == datetime.fromtimestamp(reset, tz=UTC)
    assert poll_github_top_repositories() is None
    assert len(github.received) == 1


def test_the_details_of_a_failure_go_to_one_log_line_and_not_to_the_page(github, caplog):
    caplog.set_level(logging.INFO, logger="web.trending")
    github.answer(200, search_body([{**repository_items(1)[0], "stargazers_count": "many"}]))

    with pytest.raises(GitHubBadResponse):
        poll_github_top_repositories()

    assert Poll.objects.get().error == "GitHub's answer had a malformed repository."
    (line,) = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert "stargazers_count is 'many'" in line.getMessage()
    assert line.exc_info is None


@pytest.mark.parametrize("send_length", [True, False], ids=["with-content-length", "streamed-to-close"])
def test_an_answer_larger_than_the_cap_is_refused_without_reading_it_all(github, settings, send_length):
    settings.GITHUB_MAX_RESPONSE_BYTES = 10_000
    body = search_body(repository_items())  # about 39 kB

    github.answer(200, body, {"ETag": '"v1"'}, send_length=send_length)

    with pytest.raises(GitHubBadResponse, match="larger than the 10,000 bytes the poll accepts"):
        poll_github_top_repositories()
    assert Poll.objects.get().status == Poll.Status.FAILED
    assert not RepositorySnapshot.objects.exists()


def test_a_server_that_drips_its_answer_is_cut_off_at_the_deadline(github, settings):
    settings.GITHUB_DEADLINE_MS = 300
    # Each byte comes well within the read timeout, but the whole answer would take minutes.
    github.answer(200, search_body(repository_items()), drip_bytes=100, drip_pause_s=0.05)

    with pytest.raises(GitHubUnavailable, match="GitHub did not finish answering within 300 ms"):
        poll_github_top_repositories()
    assert Poll.objects.get().error == "GitHub did not finish answering within 300 ms."


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("full_name", "o/" + "n" * 300),
        ("html_url", "https://github.com/" + "p" * 300),
        ("forks_count", 2**31),
    ],
    ids=["name-too-long", "url-too-long", "count-too-large"],
)
def test_a_value_too_large_for_its_column_is_a_malformed_answer_on_every_database(github, field, value):
    github.answer(200, search_body([{**repository_items(1)[0], field: value}]))

    with pytest.raises(GitHubBadResponse, match="malformed repository"):
        poll_github_top_repositories()
    assert not RepositorySnapshot.objects.exists()


def test_nul_characters_that_postgres_cannot_store_are_dropped_from_descriptions(github):
    github.answer(200, search_body([{**repository_items(1)[0], "description": "bad\x00byte"}]))

    poll_github_top_repositories()

    assert RepositorySnapshot.objects.get().description == "badbyte"
