"""The leader's lease and the (job, slot) claim, on the test database and the test SQS server."""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime, timedelta

import pytest
from django.db import DatabaseError, connection

from scheduler.jobs import Job, every
from scheduler.models import ScheduledRun
from scheduler.selectors import lease_get
from scheduler.services import lease_acquire, lease_release, scheduled_run_enqueue

pytestmark = pytest.mark.django_db(transaction=True)

SLOT = datetime(2026, 3, 1, 12, 10, tzinfo=UTC)


def poll_job(actor_name: str = "poll_github_top_repos") -> Job:
    return Job(
        name="poll_github",
        actor_name=actor_name,
        trigger=every(timedelta(minutes=10)),
        misfire_grace=timedelta(minutes=5),
    )


def messages_waiting(broker, queue_name: str = "default") -> int:
    attributes = broker.client.get_queue_attributes(
        QueueUrl=broker.queue_url(queue_name), AttributeNames=["ApproximateNumberOfMessages"]
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"])


def test_only_one_holder_gets_the_lease_and_only_it_can_renew_it():
    assert lease_acquire(holder="a", ttl_ms=60_000) is True
    assert lease_acquire(holder="b", ttl_ms=60_000) is False
    assert lease_acquire(holder="a", ttl_ms=60_000) is True
    assert lease_get().holder == "a"


def test_an_expired_lease_goes_to_the_next_process_that_asks_and_not_before():
    assert lease_acquire(holder="a", ttl_ms=300) is True
    started = time.monotonic()

    deadline = started + 5
    while not lease_acquire(holder="b", ttl_ms=60_000):
        assert time.monotonic() < deadline, "The expired lease was never taken over."
        time.sleep(0.02)

    assert time.monotonic() - started >= 0.25  # not before it expired (SQLite keeps milliseconds)
    assert lease_get().holder == "b"
    assert lease_acquire(holder="a", ttl_ms=60_000) is False


def test_a_released_lease_can_be_taken_at_once():
    lease_acquire(holder="a", ttl_ms=60_000)

    assert lease_release(holder="b") is False  # not b's to give
    assert lease_release(holder="a") is True

    assert lease_acquire(holder="b", ttl_ms=60_000) is True


def test_a_slot_claimed_twice_is_enqueued_once(broker):
    first = scheduled_run_enqueue(job=poll_job(), slot=SLOT, holder="a", broker=broker)
    second = scheduled_run_enqueue(job=poll_job(), slot=SLOT, holder="b", broker=broker)

    assert first is not None
    assert first.status == ScheduledRun.Status.ENQUEUED
    assert first.message_id
    assert second is None
    assert messages_waiting(broker) == 1
    assert ScheduledRun.objects.get().holder == "a"


def test_a_slot_already_enqueued_is_skipped_without_a_refused_insert_for_the_database_to_log(broker, caplog):
    caplog.set_level(logging.INFO, logger="scheduler.services")
    scheduled_run_enqueue(job=poll_job(), slot=SLOT, holder="a", broker=broker)
    refused: list[str] = []

    def record_refusals(execute, sql, params, many, context):
        try:
            return execute(sql, params, many, context)
        except DatabaseError:
            refused.append(sql)
            raise

    with connection.execute_wrapper(record_refusals):
        assert scheduled_run_enqueue(job=poll_job(), slot=SLOT, holder="b", broker=broker) is None

    assert refused == []
    assert "Job 'poll_github' for slot 2026-03-01T12:10:00+00:00 was already enqueued" in caplog.text
    assert messages_waiting(broker) == 1


def test_the_next_slot_is_a_new_run(broker):
    scheduled_run_enqueue(job=poll_job(), slot=SLOT, holder="a", broker=broker)
    scheduled_run_enqueue(job=poll_job(), slot=SLOT + timedelta(minutes=10), holder="a", broker=broker)

    assert messages_waiting(broker) == 2


def test_a_jobs_run_records_older_than_a_week_go_when_it_runs_again_and_other_jobs_keep_theirs(broker):
    week = timedelta(days=7)
    for job_name, age in [
        ("poll_github", week + timedelta(minutes=10)),
        ("poll_github", week),
        ("other", 2 * week),
    ]:
        ScheduledRun.objects.create(job=job_name, slot=SLOT - age, holder="old", claimed_at=SLOT - age)

    scheduled_run_enqueue(job=poll_job(), slot=SLOT, holder="a", broker=broker)

    kept = sorted((run.job, SLOT - run.slot) for run in ScheduledRun.objects.all())
    assert kept == [("other", 2 * week), ("poll_github", timedelta(0)), ("poll_github", week)]


def test_a_job_whose_actor_is_not_declared_is_recorded_as_failed_with_a_clear_error(broker, caplog):
    caplog.set_level(logging.ERROR, logger="scheduler.services")

    run = scheduled_run_enqueue(job=poll_job("no_such_actor"), slot=SLOT, holder="a", broker=broker)

    assert run is not None
    assert run.status == ScheduledRun.Status.FAILED
    assert run.error == "No actor named 'no_such_actor' is declared."
    assert any("no actor named 'no_such_actor' is declared" in message for message in caplog.messages)
