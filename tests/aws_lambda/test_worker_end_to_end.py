"""worker_handler behind a stand-in for Lambda's SQS event source, on the test SQS server.

The mapping (tests/aws_lambda/event_source.py) receives, invokes and deletes what the answer does not
report, as Lambda does; these tests follow messages from the site or the schedule to their outcome.
"""

from __future__ import annotations

import json

import pytest
from django.contrib.auth import get_user_model
from django.tasks import TaskResultStatus

from tasks.send_confirmation_email import send_confirmation_email
from tests.aws_lambda.conftest import dead_letters
from tests.aws_lambda.event_source import EventSourceMapping
from tests.aws_lambda.events import LambdaContext, http_event, reply, sample
from tests.aws_lambda.test_web_handler import upload_through_handler
from tests.brokers.conftest import queue_counts
from tests.web.core import example_tasks
from tests.web.images.conftest import jpeg_bytes
from tests.web.trending.fake_github import repository_items, search_body
from web.aws_lambda import scheduler_handler, web_handler, worker_handler
from web.core.enqueue import wait_for_background_sends
from web.images.models import Image
from web.ops.models import TaskRun
from web.trending.models import Poll

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def mapping(broker) -> EventSourceMapping:
    """The default queue's event source, invoking worker_handler."""
    return EventSourceMapping(broker.client, broker.queue_url("default"), worker_handler)


def is_empty(broker, queue_name: str = "default") -> bool:
    return set(queue_counts(broker.client, broker.queue_url(queue_name)).values()) == {0}


def test_an_upload_through_the_site_function_gets_its_thumbnails_from_the_worker_function(
    broker, mapping, media_bucket, s3, session_cookie, lambda_hosts
):
    assert reply(upload_through_handler("http_api_v2", session_cookie, jpeg_bytes(1600, 1200))).status == 302

    [invocation] = mapping.run_until_idle()

    assert invocation.reported == []
    image = Image.objects.get()
    assert image.status == Image.Status.DONE
    thumbnails = list(image.thumbnails.all())
    assert thumbnails, "the worker made thumbnails"
    stored = {item["Key"] for item in s3.list_objects_v2(Bucket=media_bucket)["Contents"]}
    assert {f"media/{thumbnail.file.name}" for thumbnail in thumbnails} <= stored
    page = reply(
        web_handler(
            http_event("http_api_v2", "GET", f"/images/{image.pk}/", cookies={"sessionid": session_cookie}),
            LambdaContext(),
        )
    )
    assert "Making thumbnails" not in page.text
    assert is_empty(broker)


def test_a_failing_actor_is_retried_with_backoff_and_then_dead_lettered_with_its_reason(
    broker, actors, mapping
):
    broker.get_actor("flaky").send("nightly sync")

    first = mapping.invoke_once()
    # The retry waits out its backoff: nothing can be received until it is over.
    assert queue_counts(broker.client, broker.queue_url("default"))["delayed"] == 1
    assert mapping.invoke_once() is None
    second = mapping.invoke_once(wait_s=10)
    third = mapping.invoke_once(wait_s=10)

    assert [first.reported, second.reported, third.reported] == [[], [], []]
    assert actors.ran == ["nightly sync"] * 3
    [(dead_body, reason)] = dead_letters(broker)
    assert json.loads(dead_body)["args"] == ["nightly sync"]
    assert reason == {
        "offload.actor": "flaky",
        "offload.queue": "default",
        "offload.error_type": "RuntimeError",
        "offload.error": "nightly sync could not be done",
        "offload.attempts": "3",
    }
    assert is_empty(broker)


def test_a_record_delivered_again_after_a_crash_does_not_send_its_mail_twice(broker, mapping, mailbox):
    user = get_user_model().objects.create_user(
        username="ada@example.com", email="ada@example.com", password="not-used-here", is_active=False
    )
    send_confirmation_email.send(user.pk)

    mapping.invoke_once(crash=True)  # the mail went out; the container died before the delete
    mailbox.wait_for("ada@example.com")
    again = mapping.invoke_once()

    assert again.reported == []
    assert mailbox.count("ada@example.com") == 1
    assert TaskRun.objects.get(actor_name="send_confirmation_email").status == TaskRun.Status.SUCCEEDED
    assert is_empty(broker)


def test_the_scheduler_function_called_twice_for_a_minute_has_github_polled_once(broker, mapping, github):
    github.answer(200, search_body(repository_items()), {"ETag": '"v1"'})
    event = sample("scheduler")  # 12:00: a poll slot (and the hourly report's)

    scheduler_handler(event, LambdaContext(request_id="first"))
    scheduler_handler(event, LambdaContext(request_id="retry"))
    invocations = mapping.run_until_idle()

    assert invocations, "the poll was enqueued"
    assert all(invocation.reported == [] for invocation in invocations)
    assert len(github.received) == 1
    assert Poll.objects.get().status == Poll.Status.CHANGED
    assert is_empty(broker)


def test_django_tasks_run_by_the_worker_function_succeed_retry_and_fail_as_on_a_long_running_worker(
    broker, mapping
):
    added = example_tasks.add.enqueue(2, 3)
    retried = example_tasks.flaky.enqueue(succeed_on=2)  # max_retries=2: fails once, then succeeds
    spent = example_tasks.flaky.enqueue(succeed_on=10)  # fails all three attempts
    assert wait_for_background_sends(), "the tasks' messages never reached SQS"

    invocations = mapping.run_until_idle(wait_s=3)  # the retries come back after their backoff

    assert all(invocation.reported == [] for invocation in invocations)
    assert (
        example_tasks.add.get_result(added.id).return_value,
        example_tasks.add.get_result(added.id).status,
    ) == (
        5,
        TaskResultStatus.SUCCESSFUL,
    )
    second_try = example_tasks.flaky.get_result(retried.id)
    assert (second_try.status, second_try.return_value, second_try.attempts) == (
        TaskResultStatus.SUCCESSFUL,
        2,
        2,
    )
    failed = example_tasks.flaky.get_result(spent.id)
    assert (failed.status, failed.attempts, len(failed.errors)) == (TaskResultStatus.FAILED, 3, 3)
    [(dead_body, reason)] = dead_letters(broker)
    assert json.loads(dead_body)["message_id"] == spent.id
    assert reason["offload.error_type"] == "ConnectionError"
    assert is_empty(broker)
