"""Recording task runs and queue depths; redriving dead letters."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import F
from django.utils import timezone
from dramatiq import Broker
from dramatiq.errors import ConnectionClosed

from brokers import BatchSendFailed, SQSBrokerError
from brokers.limits import MAX_RECEIVE_MESSAGES
from web.core.enqueue import enqueue_on_commit
from web.ops.errors import describe_broker_error
from web.ops.models import DeadLetterRedrive, QueueDepthSample, TaskRun

logger = logging.getLogger(__name__)

#: Longest error text kept on a run.
MAX_ERROR_CHARS = 2_000
#: Queue-depth samples are kept this long: the chart shows the last 24 hours.
QUEUE_DEPTH_RETENTION = timedelta(hours=48)


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


def queue_depth_sample(*, broker: Broker, now: datetime | None = None) -> list[QueueDepthSample]:
    """Store every declared queue's counts as of now, and delete samples past QUEUE_DEPTH_RETENTION.

    A queue SQS cannot report on is left out of this sample (a gap in the chart), not stopped on.
    """
    now = now or timezone.now()
    samples = []
    for name in sorted(broker.get_declared_queues()):
        try:
            counts = broker.queue_counts(name)
        except (ConnectionClosed, SQSBrokerError) as e:
            logger.warning("Could not sample the depth of queue %r: %s", name, e)
            continue
        samples.append(QueueDepthSample(queue_name=name, sampled_at=now, **counts))
    # One transaction: a reader never sees the new sample beside the ones it replaces.
    with transaction.atomic():
        QueueDepthSample.objects.bulk_create(samples)
        QueueDepthSample.objects.filter(sampled_at__lt=now - QUEUE_DEPTH_RETENTION).delete()
    return samples


#: A "retry all" still waiting or running this long after it was asked for is taken for lost (its
#: worker died), so that another may start.
REDRIVE_STALE_AFTER = timedelta(minutes=30)


def dead_letter_redrive_request(
    *, broker: Broker, queue_name: str, requested_by: str
) -> tuple[DeadLetterRedrive, bool]:
    """Record an operator's "retry all" of a queue and have a worker run it; ValueError for no such queue.

    One at a time per queue: while one is waiting or running (and not given up as stale), another
    click returns it, with False for "not started now", instead of racing it through the same queue.
    """
    from tasks.redrive_dead_letters import redrive_dead_letters

    if queue_name not in broker.get_declared_queues():
        raise ValueError(f"No queue named {queue_name!r}.")
    now = timezone.now()
    with transaction.atomic():
        in_flight = (
            DeadLetterRedrive.objects.select_for_update()
            .filter(
                queue_name=queue_name,
                status__in=[DeadLetterRedrive.Status.WAITING, DeadLetterRedrive.Status.RUNNING],
                requested_at__gt=now - REDRIVE_STALE_AFTER,
            )
            .first()
        )
        if in_flight is not None:
            return in_flight, False
        redrive = DeadLetterRedrive.objects.create(
            queue_name=queue_name, requested_by=requested_by, requested_at=now
        )
        enqueue_on_commit(redrive_dead_letters, redrive_id=redrive.pk)
    return redrive, True


def dead_letter_redrive_run(*, broker: Broker, redrive_id: int) -> DeadLetterRedrive | None:
    """Send a queue's dead letters back to it with fresh retries, recording the outcome on the redrive.

    It moves at most the dead letters there when it starts (SQS's count of them, and one receive more
    since the count is approximate), so letters that fail again at once and are dead-lettered anew
    are not sent round and round until the job's time limit.
    A failure is recorded in words for the operator and raised again, so the job's retries apply.
    """
    redrive = DeadLetterRedrive.objects.filter(pk=redrive_id).first()
    if redrive is None:
        logger.info("Redrive %r is gone; nothing to do.", redrive_id)
        return None
    DeadLetterRedrive.objects.filter(pk=redrive.pk).update(status=DeadLetterRedrive.Status.RUNNING)
    try:
        waiting = broker.queue_counts(redrive.queue_name)["dead_letters"]
        moved = broker.redrive(redrive.queue_name, limit=waiting + MAX_RECEIVE_MESSAGES)
    except (ConnectionClosed, SQSBrokerError) as e:
        sent = e.sent if isinstance(e, BatchSendFailed) else 0
        DeadLetterRedrive.objects.filter(pk=redrive.pk).update(
            status=DeadLetterRedrive.Status.FAILED,
            moved=F("moved") + sent,
            finished_at=timezone.now(),
            error=describe_broker_error(e),
        )
        raise
    DeadLetterRedrive.objects.filter(pk=redrive.pk).update(
        status=DeadLetterRedrive.Status.DONE, moved=F("moved") + moved, finished_at=timezone.now(), error=""
    )
    logger.info("Redrive %r sent %d dead letter(s) of queue %r back.", redrive.pk, moved, redrive.queue_name)
    redrive.refresh_from_db()
    return redrive
