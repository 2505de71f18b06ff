"""The scheduler process in this process (threads), on the test database and the test SQS server."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest

from scheduler.jobs import Job, every
from scheduler.models import ScheduledRun
from scheduler.runner import SchedulerProcess
from scheduler.selectors import lease_get
from scheduler.services import lease_acquire
from tests.waiting import wait_until

pytestmark = pytest.mark.django_db(transaction=True)

HOUR = timedelta(hours=1)


def hourly_poll(**options) -> Job:
    # Hourly slots with an hour's grace: the current hour's slot is always still runnable.
    return Job(
        name="hourly_poll",
        actor_name="poll_github_top_repos",
        trigger=every(HOUR),
        misfire_grace=HOUR,
        **options,
    )


def current_hour() -> datetime:
    return datetime.now(UTC).replace(minute=0, second=0, microsecond=0)


@pytest.fixture
def run_scheduler(broker) -> Iterator[Callable[..., SchedulerProcess]]:
    running: list[tuple[SchedulerProcess, threading.Thread]] = []

    def start(*jobs: Job, holder: str = "in-test") -> SchedulerProcess:
        process = SchedulerProcess(jobs=jobs, broker=broker, lease_ms=5_000, renew_ms=200, holder=holder)
        thread = threading.Thread(target=process.run, name=f"scheduler-{holder}")
        thread.start()
        running.append((process, thread))
        return process

    yield start
    for process, thread in running:
        process.stop()
        thread.join(timeout=10)
        assert not thread.is_alive(), "the scheduler did not stop"


def test_a_new_leader_runs_the_slot_a_dead_leader_missed_within_its_grace(run_scheduler):
    run_scheduler(hourly_poll(), holder="new-leader")

    wait_until(
        lambda: ScheduledRun.objects.filter(status=ScheduledRun.Status.ENQUEUED).exists(),
        timeout=10,
        what="the missed slot to be enqueued",
    )

    run = ScheduledRun.objects.get()
    assert (run.job, run.slot, run.status, run.holder) == (
        "hourly_poll",
        current_hour(),
        ScheduledRun.Status.ENQUEUED,
        "new-leader",
    )


def test_a_new_leader_does_not_repeat_a_slot_the_old_leader_enqueued(run_scheduler, caplog):
    ScheduledRun.objects.create(
        job="hourly_poll",
        slot=current_hour(),
        holder="old-leader",
        claimed_at=datetime.now(UTC),
        status=ScheduledRun.Status.ENQUEUED,
    )

    process = run_scheduler(hourly_poll(), holder="new-leader")

    wait_until(lambda: process.leading and "caught up" in caplog.text, timeout=10, what="the catch-up")
    assert list(ScheduledRun.objects.values_list("holder", flat=True)) == ["old-leader"]


def test_a_scheduler_that_does_not_hold_the_lease_enqueues_nothing_and_stops_cleanly(run_scheduler, caplog):
    lease_acquire(holder="someone-else", ttl_ms=60_000)

    process = run_scheduler(hourly_poll(), holder="follower")

    wait_until(lambda: "is waiting" in caplog.text, timeout=10, what="the follower to notice the lease")
    assert not process.leading
    assert not ScheduledRun.objects.exists()
    process.stop()
    wait_until(lambda: "'follower' stopped." in caplog.text, timeout=10, what="the follower to stop")
    assert lease_get().holder == "someone-else"
