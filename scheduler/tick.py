"""One pass over the schedule, for hosts that call the scheduler instead of running it.

Where no scheduler process runs (AWS Lambda invoked every minute by EventBridge Scheduler), each
call enqueues every job whose slot is due at `now` and that no one ran yet. There is no lease: the
(job, slot) record is what makes two calls for one minute, or a retried call, enqueue a slot once.
"""

from __future__ import annotations

import logging
from datetime import datetime

from dramatiq import Broker

from scheduler.jobs import Job
from scheduler.models import ScheduledRun
from scheduler.selectors import scheduled_run_last_slot
from scheduler.services import scheduled_run_enqueue

logger = logging.getLogger(__name__)


def schedule_tick(*, jobs: tuple[Job, ...], now: datetime, holder: str, broker: Broker) -> list[ScheduledRun]:
    """Enqueue each job due at `now` that has no run for its slot yet; returns the runs it recorded."""
    runs = []
    for job in jobs:
        last = scheduled_run_last_slot(job_name=job.name)
        slot = job.due_slot(now, last_slot=last)
        if slot is None or (last is not None and last >= slot):
            continue  # nothing due, or this slot (or a later one) already has its run
        run = scheduled_run_enqueue(job=job, slot=slot, holder=holder, broker=broker)
        if run is not None:
            runs.append(run)
    return runs
