"""One pass over the schedule per call (the Lambda path), on the test database and the test SQS server."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from scheduler.jobs import schedule
from scheduler.models import ScheduledRun
from scheduler.tick import schedule_tick

pytestmark = pytest.mark.django_db(transaction=True)

START = datetime(2026, 3, 2, 11, 58, tzinfo=UTC)


def actors_in_queue(broker) -> Counter[str]:
    """The actor names of every message waiting in the default queue (taken off it)."""
    found: Counter[str] = Counter()
    url = broker.queue_url("default")
    while True:
        got = broker.client.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=60)
        messages = got.get("Messages", [])
        if not messages:
            return found
        found.update(json.loads(m["Body"])["actor_name"] for m in messages)


def test_a_call_every_minute_for_an_hour_enqueues_each_poll_slot_the_hourly_report_and_a_sample_a_minute(
    broker,
):
    for minute in range(63):  # 11:58 to 13:00
        schedule_tick(jobs=schedule(), now=START + timedelta(minutes=minute), holder="tick", broker=broker)

    # 11:58 catches up the poll's 11:50 slot (it never ran); then :00, :10, ... :50 and 13:00.
    assert actors_in_queue(broker) == {
        "poll_github_top_repos": 8,
        "regenerate_report": 2,
        "sample_queue_depths": 63,
    }
    polls = ScheduledRun.objects.filter(job="poll_github").order_by("slot")
    assert [run.slot.strftime("%H:%M") for run in polls] == [
        "11:50", "12:00", "12:10", "12:20", "12:30", "12:40", "12:50", "13:00"
    ]  # fmt: skip


def test_two_calls_for_the_same_minute_enqueue_its_jobs_once(broker):
    first = schedule_tick(jobs=schedule(), now=START.replace(minute=0, hour=12), holder="a", broker=broker)
    second = schedule_tick(jobs=schedule(), now=START.replace(minute=0, hour=12), holder="b", broker=broker)

    assert {run.job for run in first} == {"poll_github", "regenerate_report", "sample_queue_depths"}
    assert second == []
    assert actors_in_queue(broker) == {
        "poll_github_top_repos": 1,
        "regenerate_report": 1,
        "sample_queue_depths": 1,
    }
