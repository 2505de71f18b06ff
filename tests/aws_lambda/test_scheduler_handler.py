"""scheduler_handler: EventBridge Scheduler's every-minute call enqueues due jobs and relays the outbox."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from django.utils import timezone

from scheduler.models import ScheduledRun
from tasks.echo import echo
from tests.aws_lambda.events import LambdaContext, sample
from tests.aws_lambda.test_web_handler import queued_messages
from web.aws_lambda import scheduler_handler
from web.core.models import OutboxMessage

pytestmark = pytest.mark.django_db(transaction=True)


def test_two_invocations_for_one_minute_enqueue_the_github_poll_once(broker):
    event = sample("scheduler")  # 2026-03-02T12:00:00Z: a poll slot, the hourly report's and a depth sample's

    first = scheduler_handler(event, LambdaContext(request_id="first"))
    again = scheduler_handler(event, LambdaContext(request_id="retry"))

    actors = [m["actor_name"] for m in queued_messages(broker)]
    assert sorted(actors) == ["poll_github_top_repos", "regenerate_report", "sample_queue_depths"]
    assert {run["job"] for run in first["enqueued"]} == {
        "poll_github",
        "regenerate_report",
        "sample_queue_depths",
    }
    assert again["enqueued"] == []
    poll = ScheduledRun.objects.get(job="poll_github")
    assert (poll.slot.isoformat(), poll.status) == ("2026-03-02T12:00:00+00:00", ScheduledRun.Status.ENQUEUED)


def test_a_pending_outbox_row_is_relayed_by_one_invocation(broker):
    # What a web request leaves behind when SQS refused its message: the row, due for the relay.
    message = echo.message("kept in the outbox")
    OutboxMessage.objects.create(
        queue_name=message.queue_name,
        actor_name=message.actor_name,
        message_id=message.message_id,
        body=message.encode().decode("utf-8"),
        available_at=timezone.now() - timedelta(seconds=1),
        last_error="ConnectionClosed: SQS could not be reached.",
    )

    result = scheduler_handler(sample("scheduler"), LambdaContext())

    assert result["relayed"] == 1
    relayed = [m for m in queued_messages(broker) if m["actor_name"] == "echo"]
    assert [(m["message_id"], m["args"]) for m in relayed] == [(message.message_id, ["kept in the outbox"])]
    assert not OutboxMessage.objects.exists()


def test_an_invocation_without_a_time_schedules_for_now(broker):
    result = scheduler_handler({}, LambdaContext())

    assert abs(timezone.now() - datetime.fromisoformat(result["scheduled_time"])) < timedelta(minutes=1)


@pytest.mark.parametrize("bad", ["2026-03-02 12:00", "yesterday", 1772452800])
def test_an_invocation_with_an_unreadable_time_is_refused_with_the_reason_and_enqueues_nothing(bad, broker):
    with pytest.raises(ValueError, match="must be an ISO 8601 time with its zone"):
        scheduler_handler({**sample("scheduler"), "scheduledTime": bad}, LambdaContext())

    assert not ScheduledRun.objects.exists()


def test_an_invocation_whose_event_is_no_object_is_refused_with_the_reason(broker):
    with pytest.raises(ValueError, match="must be a JSON object, not list"):
        scheduler_handler(["2026-03-02T12:00:00Z"], LambdaContext())
