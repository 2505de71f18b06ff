"""The poll actor: through a real worker and SQS, against a loopback server playing GitHub."""

from __future__ import annotations

import json
import logging
import time

import dramatiq
import pytest

import web.trending.services
from tasks.poll_github import poll_github_top_repos
from tests.web.trending.fake_github import FakeGitHub, repository_items, search_body
from web.trending.models import Poll
from web.trending.services import poll_github_top_repositories

pytestmark = pytest.mark.django_db(transaction=True)


def waiting_messages(broker, queue_name: str) -> list[dict]:
    received = broker.client.receive_message(
        QueueUrl=broker.queue_url(queue_name), MaxNumberOfMessages=10, WaitTimeSeconds=0
    ).get("Messages", [])
    return [json.loads(message["Body"]) for message in received]


def test_a_rate_limited_poll_is_retried_by_the_worker_after_githubs_reset_time_and_not_before(
    broker, worker, github
):
    github.answer(200, search_body(repository_items()), {"ETag": '"v1"'})
    poll_github_top_repositories()
    # Far enough ahead that even a busy machine makes the first try before it.
    reset = int(time.time()) + 5
    github.answer(
        403,
        {"message": "API rate limit exceeded."},
        {"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(reset)},
    )
    github.answer(304, headers={"ETag": '"v1"'})

    poll_github_top_repos.send()
    broker.join(poll_github_top_repos.queue_name, timeout=30_000)

    assert [poll.status for poll in Poll.objects.order_by("started_at")] == [
        Poll.Status.CHANGED,
        Poll.Status.RATE_LIMITED,
        Poll.Status.NOT_MODIFIED,
    ]
    first_try, retry = github.received[1:]
    assert first_try.at < reset <= retry.at
    assert retry.headers["If-None-Match"] == '"v1"'


def test_a_poll_that_changed_the_data_asks_for_a_new_report(broker, github):
    if "regenerate_report" not in broker.actors:
        # The report is another module's; where it is missing, a stand-in of the same name will do.
        dramatiq.actor(lambda run_id=None: None, actor_name="regenerate_report", broker=broker)
    github.answer(200, search_body(repository_items()), {"ETag": '"v1"'})

    poll_github_top_repos.fn()

    report_queue = broker.get_actor("regenerate_report").queue_name
    assert [m["actor_name"] for m in waiting_messages(broker, report_queue)] == ["regenerate_report"]


def test_a_poll_that_found_nothing_new_does_not_ask_for_a_report(broker, github):
    github.answer(200, search_body(repository_items()), {"ETag": '"v1"'})
    poll_github_top_repositories()
    github.answer(304)

    poll_github_top_repos.fn()

    assert Poll.objects.filter(status=Poll.Status.NOT_MODIFIED).count() == 1
    assert waiting_messages(broker, "default") == []


def test_without_a_report_actor_the_poll_still_stores_its_data_and_logs_why_no_report_follows(
    broker, github, monkeypatch, caplog
):
    monkeypatch.setattr(web.trending.services, "REPORT_ACTOR", "nobody_declared")
    caplog.set_level(logging.ERROR, logger="web.trending.services")
    github.answer(200, search_body(repository_items()), {"ETag": '"v1"'})

    poll_github_top_repos.fn()

    assert Poll.objects.get().status == Poll.Status.CHANGED
    assert caplog.messages == [
        "The GitHub data changed but no actor named 'nobody_declared' is declared to update the report."
    ]


def test_a_server_error_is_left_to_dramatiqs_retries(github):
    github.answer(503, b"Service unavailable")

    with pytest.raises(dramatiq.Retry, match="GitHub answered 503 Service Unavailable"):
        poll_github_top_repos.fn()

    assert poll_github_top_repos.options["max_retries"] == 3


def test_an_unreachable_github_is_one_log_line_per_attempt_and_never_a_traceback(
    broker, worker, github, settings, caplog
):
    with FakeGitHub() as closed:
        settings.GITHUB_API_URL = closed.url  # nothing listens there any more
    caplog.set_level(logging.INFO)

    poll_github_top_repos.send_with_options(max_retries=1, min_backoff=10, max_backoff=10)
    broker.join(poll_github_top_repos.queue_name, timeout=30_000)

    assert [poll.error for poll in Poll.objects.all()] == ["Could not reach GitHub."] * 2
    assert not [r for r in caplog.records if r.exc_info], "a worker traceback was logged"
    failures = [r.getMessage() for r in caplog.records if r.name == "web.trending.services"]
    assert len(failures) == 2
    assert all("Could not reach GitHub. (ConnectError:" in line for line in failures)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert broker.queue_counts(poll_github_top_repos.queue_name)["dead_letters"] == 1


def test_a_refusal_is_logged_and_not_retried(github, caplog):
    caplog.set_level(logging.ERROR, logger="tasks.poll_github")
    github.answer(401, {"message": "Bad credentials"})

    poll_github_top_repos.fn()  # returns: retrying would get the same answer

    assert Poll.objects.get().error == "GitHub answered 401 Unauthorized: Bad credentials"
    assert caplog.messages == [
        "GitHub refused the poll; not retrying: GitHub answered 401 Unauthorized: Bad credentials"
    ]
