"""/trending/ as a visitor sees it: the stored top 100, when it was fetched, and what went wrong."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from tests.web.trending.fake_github import repository_items, search_body
from web.trending.github import GitHubUnavailable
from web.trending.models import Poll
from web.trending.services import poll_github_top_repositories

pytestmark = pytest.mark.django_db


def test_before_the_first_poll_the_page_says_the_list_is_coming(client, github):
    response = client.get("/trending/")

    assert response.status_code == 200
    html = response.content.decode()
    assert "No repositories yet" in html
    assert "The last poll failed" not in html
    assert github.received == []


def test_the_page_lists_the_stored_top_100_and_when_they_were_fetched_without_calling_github(client, github):
    github.answer(200, search_body(repository_items()), {"ETag": '"v1"'})
    poll = poll_github_top_repositories()
    requests_before = len(github.received)

    response = client.get("/trending/")

    html = response.content.decode()
    assert len(github.received) == requests_before  # the page never asks GitHub
    assert html.count("<tr>") == 101  # the header row and 100 repositories
    assert "日本語-org/projekt-1" in html
    assert "Описание №1 — naïve 🚀" in html
    assert f'datetime="{poll.finished_at.isoformat()}"' in html
    assert "No repositories yet" not in html


def test_a_failed_poll_is_explained_above_the_last_good_list(client, github):
    github.answer(200, search_body(repository_items()), {"ETag": '"v1"'})
    poll_github_top_repositories()
    github.answer(502, b"Bad gateway")
    with pytest.raises(GitHubUnavailable):
        poll_github_top_repositories()

    html = client.get("/trending/").content.decode()

    assert "The last poll failed" in html
    assert "GitHub answered 502 Bad Gateway." in html
    assert "The list below is the last one that arrived." in html
    assert html.count("<tr>") == 101


def test_a_failure_before_any_data_shows_both_the_error_and_the_empty_state(client):
    Poll.objects.create(
        started_at=timezone.now() - timedelta(minutes=1),
        finished_at=timezone.now(),
        status=Poll.Status.FAILED,
        error="Could not reach GitHub at https://api.github.com: Temporary failure in name resolution",
    )

    html = client.get("/trending/").content.decode()

    assert "The last poll failed" in html
    assert "Temporary failure in name resolution" in html
    assert "No repositories yet" in html


def test_a_rate_limited_poll_says_when_the_next_try_is(client):
    retry_at = timezone.now() + timedelta(minutes=20)
    Poll.objects.create(
        started_at=timezone.now(),
        finished_at=timezone.now(),
        status=Poll.Status.RATE_LIMITED,
        error=f"GitHub's rate limit is used up until {retry_at:%H:%M:%S} UTC.",
        retry_at=retry_at,
    )

    html = client.get("/trending/").content.decode()

    assert "GitHub's rate limit stopped the last poll" in html
    assert f"The next try is after {retry_at:%H:%M:%S} UTC." in html


def test_a_success_after_a_failure_clears_the_message(client, github):
    github.answer(500)
    with pytest.raises(GitHubUnavailable):
        poll_github_top_repositories()
    github.answer(200, search_body(repository_items()), {"ETag": '"v1"'})
    poll_github_top_repositories()

    html = client.get("/trending/").content.decode()

    assert "The last poll failed" not in html
    assert html.count("<tr>") == 101


@pytest.mark.parametrize(
    "url",
    [
        "javascript:alert(document.cookie)",
        "http://github.com/owner/plain-http",
        "https://example.com/owner/elsewhere",
        "https://github.com@example.com/owner/look-alike",
        "https://github.com.example.com/owner/look-alike",
    ],
)
def test_a_repository_whose_url_is_not_an_https_page_on_github_is_listed_without_a_link(client, github, url):
    items = repository_items(2)
    items[1]["html_url"] = url
    github.answer(200, search_body(items), {"ETag": '"v1"'})
    poll_github_top_repositories()

    html = client.get("/trending/").content.decode()

    table = html[html.index('<table id="repositories">') :]
    assert f'<a href="{items[0]["html_url"]}">{items[0]["full_name"]}</a>' in table
    assert f"<td>{items[1]['full_name']}<br>" in table, "the name is still shown, as text"
    assert table.count("<a href=") == 1
    assert url not in table
