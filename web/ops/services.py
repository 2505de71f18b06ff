"""Recording task runs."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import F
from django.utils import timezone
from dramatiq import Broker

from web.ops.models import TaskRun

logger = logging.getLogger(__name__)

#: Longest error text kept on a run.
MAX_ERROR_CHARS = 2_000


def task_run_start(
    *, message_id: str, actor_name: str, queue_name: str, skip_repeats: bool = False
) -> TaskRun | None:
    """Record that a message starts running.

    Returns None (the caller must not run it) when the message already succeeded and skip_repeats
    is set. A repeat is counted in `duplicates`; a retry after a failure in `attempts`.
    """
    now = timezone.now()
    with transaction.atomic():
        run, created = TaskRun.objects.select_for_update().get_or_create(
            message_id=message_id,
            defaults={"actor_name": actor_name, "queue_name": queue_name, "started_at": now},
        )
        if created:
            return run
        if run.status == TaskRun.Status.SUCCEEDED:
            TaskRun.objects.filter(pk=run.pk).update(duplicates=F("duplicates") + 1)
            if skip_repeats:
                return None
        else:
            run.attempts += 1
        run.status = TaskRun.Status.RUNNING
        run.started_at = now
        run.finished_at = None
        run.duration_ms = None
        run.save(update_fields=["status", "attempts", "started_at", "finished_at", "duration_ms"])
        return run


def task_run_finish(*, message_id: str, status: TaskRun.Status, error: str = "") -> None:
    """Record how a run ended."""
    run = TaskRun.objects.filter(message_id=message_id).only("started_at").first()
    if run is None:
        return
    now = timezone.now()
    TaskRun.objects.filter(pk=run.pk).update(
        status=status,
        finished_at=now,
        duration_ms=_ms(now - run.started_at),
        error=error[:MAX_ERROR_CHARS],
    )


def task_run_prune(*, older_than: timedelta, now: datetime | None = None) -> int:
    """Delete finished runs that started before `older_than` ago; returns how many went."""
    cutoff = (now or timezone.now()) - older_than
    deleted, _ = TaskRun.objects.filter(started_at__lt=cutoff).exclude(status=TaskRun.Status.RUNNING).delete()
    logger.info("Deleted %d task run record(s) older than %s.", deleted, cutoff.isoformat())
    return deleted


def _ms(delta: timedelta) -> int:
    return max(0, round(delta.total_seconds() * 1000))


def dead_letters_redrive(*, broker: Broker, queue_name: str, limit: int | None = None) -> int:
    """Send a queue's dead letters (at most `limit`) back to it with fresh retries; returns how many."""
    if queue_name not in broker.get_declared_queues():
        raise ValueError(f"No queue named {queue_name!r}.")
    moved = broker.redrive(queue_name, limit=limit)
    logger.info("Redrove %d dead letter(s) of queue %r.", moved, queue_name)
    return moved
