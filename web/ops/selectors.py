"""What the operations page reads: queue counts from SQS; task runs and the outbox from the database."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from django.db.models import QuerySet
from dramatiq import Broker
from dramatiq.errors import ConnectionClosed

from brokers import SQSBrokerError
from web.core.models import OutboxMessage
from web.ops.models import TaskRun

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class QueueCounts:
    name: str
    visible: int | None = None
    in_flight: int | None = None
    delayed: int | None = None
    dead_letters: int | None = None
    error: str = ""


def queue_counts(*, broker: Broker) -> list[QueueCounts]:
    """Approximate counts of every declared queue; a queue SQS cannot report on carries the error."""
    counts = []
    for name in sorted(broker.get_declared_queues()):
        try:
            counts.append(QueueCounts(name, **broker.queue_counts(name)))
        except (ConnectionClosed, SQSBrokerError) as e:
            logger.warning("Could not read the counts of queue %r: %s", name, e)
            counts.append(QueueCounts(name, error="SQS did not answer."))
    return counts


def task_run_recent(*, limit: int = 50, status: str | None = None) -> QuerySet[TaskRun]:
    runs = TaskRun.objects.all()
    if status:
        runs = runs.filter(status=status)
    return runs[:limit]


def outbox_waiting() -> int:
    """Messages committed but not yet accepted by SQS, still in line for the relay."""
    return OutboxMessage.objects.filter(set_aside_at__isnull=True).count()


def outbox_set_aside(*, limit: int = 50) -> QuerySet[OutboxMessage]:
    """Messages the relay gave up on after SQS kept refusing them, newest first, with their reasons."""
    return OutboxMessage.objects.filter(set_aside_at__isnull=False).order_by("-set_aside_at", "-id")[:limit]
