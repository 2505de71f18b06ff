"""The scheduler's writes: taking and keeping the leader's lease, and enqueueing a job's slot once.

The lease is one row updated with a conditional UPDATE ("set me as holder where the holder is me or
the lease has expired"), which every database Django supports does atomically: no advisory locks,
so it works on SQLite and behind PgBouncer alike. Expiry is judged by the database's clock, so two
hosts with different clocks still agree on who holds it. On PostgreSQL a competing UPDATE waits on
the row only while the other single-statement UPDATE runs, then re-checks its condition against the
committed row, so no SELECT ... FOR UPDATE (SKIP LOCKED or not) is needed.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.db.models.functions import Now
from django.utils import timezone
from dramatiq import Broker
from dramatiq.errors import ActorNotFound

from scheduler.jobs import Job
from scheduler.models import ScheduledRun, SchedulerLease

logger = logging.getLogger(__name__)

#: The lease scheduler processes compete for unless SCHEDULER_LEASE_NAME names another.
LEASE_NAME = "scheduler"
#: A time long past: a lease row created free.
_LONG_AGO = datetime(2000, 1, 1, tzinfo=UTC)
#: A job's run records are kept this long after their slot. Only recent slots can be claimed again
#: (the longest misfire grace or catch-up is hours), and a job due every minute would otherwise
#: leave 1,440 rows a day.
RUN_RECORD_RETENTION = timedelta(days=7)


def lease_acquire(*, holder: str, ttl_ms: int, name: str = LEASE_NAME) -> bool:
    """Take or renew the lease for ttl_ms; True when `holder` holds it afterwards."""
    SchedulerLease.objects.get_or_create(name=name, defaults={"expires_at": _LONG_AGO})
    expires_at = Now() + timedelta(milliseconds=ttl_ms)
    renewed = SchedulerLease.objects.filter(name=name, holder=holder).update(
        expires_at=expires_at, renewed_at=Now()
    )
    if renewed:
        return True
    taken = (
        SchedulerLease.objects.filter(name=name)
        .filter(Q(holder="") | Q(expires_at__lte=Now()))
        .update(holder=holder, expires_at=expires_at, acquired_at=Now(), renewed_at=Now())
    )
    return bool(taken)


def lease_release(*, holder: str, name: str = LEASE_NAME) -> bool:
    """Give the lease up at once, so another scheduler need not wait for it to expire."""
    released = SchedulerLease.objects.filter(name=name, holder=holder).update(holder="", expires_at=Now())
    return bool(released)


def scheduled_run_enqueue(*, job: Job, slot: datetime, holder: str, broker: Broker) -> ScheduledRun | None:
    """Enqueue `job` for `slot` unless some scheduler already did; None when it was taken.

    The slot is claimed (a unique row naming the message id) before the message is sent, so a
    crash in between loses that one run rather than ever sending it twice; a run left "claimed"
    may or may not have been sent, and its message id tells which. A failed send is recorded.
    """
    # The unique (job, slot) constraint alone decides a race, but a refused insert is an ERROR in
    # PostgreSQL's log, and a new leader's catch-up would log one per job already run: look first.
    if ScheduledRun.objects.filter(job=job.name, slot=slot).exists():
        _log_taken(job, slot)
        return None
    try:
        actor = broker.get_actor(job.actor_name)
    except ActorNotFound:
        actor = None
    message = actor.message() if actor is not None else None
    try:
        with transaction.atomic():
            run = ScheduledRun.objects.create(
                job=job.name,
                slot=slot,
                holder=holder,
                claimed_at=timezone.now(),
                message_id=message.message_id if message is not None else "",
            )
    except IntegrityError:
        _log_taken(job, slot)
        return None

    if actor is None or message is None:
        logger.error(
            "Job %r for slot %s was not enqueued: no actor named %r is declared.",
            job.name,
            slot.isoformat(),
            job.actor_name,
        )
        return _scheduled_run_fail(run, error=f"No actor named {job.actor_name!r} is declared.")

    try:
        actor.broker.enqueue(message)
    except Exception as error:  # whatever the broker raised, the scheduler must keep running
        logger.exception("Job %r for slot %s could not be enqueued.", job.name, slot.isoformat())
        return _scheduled_run_fail(run, error=f"{type(error).__name__}: {error}")

    run.status = ScheduledRun.Status.ENQUEUED
    run.enqueued_at = timezone.now()
    run.save(update_fields=["status", "enqueued_at"])
    logger.info("Enqueued %r for slot %s (message %r).", job.actor_name, slot.isoformat(), message.message_id)
    ScheduledRun.objects.filter(job=job.name, slot__lt=slot - RUN_RECORD_RETENTION).delete()
    return run


def _log_taken(job: Job, slot: datetime) -> None:
    logger.info("Job %r for slot %s was already enqueued by another scheduler.", job.name, slot.isoformat())


def _scheduled_run_fail(run: ScheduledRun, *, error: str) -> ScheduledRun:
    run.status = ScheduledRun.Status.FAILED
    run.error = error
    run.save(update_fields=["status", "error"])
    return run
