"""The schedule: every periodic job, the actor it enqueues and when. The one table of its kind.

The scheduler only enqueues; workers do the work. Times are UTC. A job's *slot* is the time its
trigger names (12:10:00), not the moment a process got round to it: slots are what the scheduler
records, so the same slot seen by two processes is the same run.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from django.conf import settings

#: Interval slots count from here, so every process computes the same slots (:00, :10, ...).
SLOT_ANCHOR = datetime(1970, 1, 1, tzinfo=UTC)
#: APScheduler works in microseconds; one past a slot asks for the slot after it.
_TICK = timedelta(microseconds=1)


@dataclass(frozen=True)
class Job:
    """One entry of the schedule.

    name: the key of its run records; renaming a job starts its history afresh.
    actor_name: the dramatiq actor it enqueues (with no arguments).
    trigger: when its slots are.
    misfire_grace: how late a slot may still be run; later ones are skipped, and several missed
      slots coalesce into the latest one.
    catch_up_after: when a scheduler starts leading and this job's last run is older than this,
      the job runs at once instead of waiting for its next slot.
    """

    name: str
    actor_name: str
    trigger: BaseTrigger
    misfire_grace: timedelta
    catch_up_after: timedelta | None = None

    def slots(self, start: datetime, end: datetime) -> Iterator[datetime]:
        """Every slot from start to end, both included."""
        slot = self.trigger.get_next_fire_time(None, start)
        while slot is not None and slot <= end:
            yield slot
            slot = self.trigger.get_next_fire_time(slot, slot + _TICK)

    def latest_slot(self, now: datetime, *, within: timedelta) -> datetime | None:
        """The last slot at or before now, if it is less than `within` old."""
        latest = None
        for slot in self.slots(now - within + _TICK, now):
            latest = slot
        return latest

    def due_slot(self, now: datetime, *, last_slot: datetime | None) -> datetime | None:
        """The slot a scheduler looking at `now` should run, given the slot of the job's last run.

        The latest slot inside the misfire grace; failing that, for a job with `catch_up_after`
        whose last run is older than that (or that never ran), the latest slot inside it. None when
        nothing is due. Whether that slot already ran is for the (job, slot) record to say.
        """
        slot = self.latest_slot(now, within=self.misfire_grace)
        if slot is not None or self.catch_up_after is None:
            return slot
        if last_slot is None or now - last_slot >= self.catch_up_after:
            return self.latest_slot(now, within=self.catch_up_after)
        return None


def every(interval: timedelta) -> IntervalTrigger:
    """Slots every `interval`, aligned to SLOT_ANCHOR rather than to when the process started."""
    return IntervalTrigger(seconds=interval.total_seconds(), start_date=SLOT_ANCHOR, timezone=UTC)


def cron(expression: str) -> CronTrigger:
    """Slots from a five-field crontab expression, in UTC."""
    return CronTrigger.from_crontab(expression, timezone=UTC)


def schedule() -> tuple[Job, ...]:
    """The schedule table. Read at start, so settings (and tests) can change the poll interval."""
    poll_every = timedelta(milliseconds=settings.GITHUB_POLL_INTERVAL_MS)
    return (
        # Every 10 minutes by default (the same slots as cron "*/10 * * * *"): well inside GitHub's
        # search rate limit, and a fresh deploy polls at once rather than waiting for the next slot.
        Job(
            name="poll_github",
            actor_name="poll_github_top_repos",
            trigger=every(poll_every),
            misfire_grace=poll_every / 2,
            catch_up_after=poll_every,
        ),
        # Hourly, on the hour. The poll also enqueues it after a poll that changed the data.
        Job(
            name="regenerate_report",
            actor_name="regenerate_report",
            trigger=cron("0 * * * *"),
            misfire_grace=timedelta(minutes=15),
        ),
        # Every minute: each queue's depth for the /ops/ chart (the job prunes samples past 48 hours).
        # A slot missed by more than half a minute is skipped: the next one is as good.
        Job(
            name="sample_queue_depths",
            actor_name="sample_queue_depths",
            trigger=cron("* * * * *"),
            misfire_grace=timedelta(seconds=30),
        ),
        # Daily housekeeping at night (UTC), apart so the two never compete for the database.
        Job(
            name="prune_task_runs",
            actor_name="prune_task_runs",
            trigger=cron("30 3 * * *"),
            misfire_grace=timedelta(hours=2),
        ),
        Job(
            name="prune_expired_exports",
            actor_name="prune_expired_exports",
            trigger=cron("45 3 * * *"),
            misfire_grace=timedelta(hours=2),
        ),
    )


def jobs_due(
    start: datetime, end: datetime, *, jobs: tuple[Job, ...] | None = None
) -> list[tuple[datetime, str]]:
    """(slot, job name) for every slot of every job from start to end, in time order."""
    table = schedule() if jobs is None else jobs
    return sorted((slot, job.name) for job in table for slot in job.slots(start, end))
