"""The scheduler's reads."""

from __future__ import annotations

from datetime import datetime

from scheduler.models import ScheduledRun, SchedulerLease
from scheduler.services import LEASE_NAME


def scheduled_run_last_slot(*, job_name: str) -> datetime | None:
    """The slot of the job's most recent run record, whatever became of it."""
    return ScheduledRun.objects.filter(job=job_name).order_by("-slot").values_list("slot", flat=True).first()


def lease_get(*, name: str = LEASE_NAME) -> SchedulerLease | None:
    return SchedulerLease.objects.filter(name=name).first()
