"""What waits: offload_queue_messages{queue,state} from SQS, offload_outbox_backlog from the database.

These are facts about the deployment, not about one process, so they are read when scraped, by the
process that answers the scrape, instead of being counted. Each read costs SQS requests (the
broker's `queue_counts`: one GetQueueAttributes for the queue, one for its dead-letter queue), so a
reading is kept for METRICS_QUEUE_CACHE_MS and shared by concurrent scrapes: however often and
however many at once Prometheus scrapes, one process reads each queue at most once per period.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from dramatiq.errors import ConnectionClosed

from brokers import SQSBrokerError

logger = logging.getLogger(__name__)

#: The states of a queue's messages, in the order `broker.queue_counts()` reports them.
STATES = ("visible", "in_flight", "delayed", "dead_letters")


@dataclass(frozen=True)
class Reading:
    queues: dict[str, dict[str, int]]
    outbox_backlog: int | None
    outbox_set_aside: int | None


class WaitingWork:
    """A Prometheus collector of queue depths and the outbox, read at most once per `max_age_ms`."""

    def __init__(
        self,
        broker: Callable[[], Any],
        *,
        max_age_ms: Callable[[], int],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._broker = broker
        self._max_age_ms = max_age_ms
        self._clock = clock
        self._lock = threading.Lock()
        self._reading: Reading | None = None
        self._read_at = 0.0
        self._read_from: Any = None

    def describe(self) -> list[Any]:
        return []  # describing would mean reading SQS; the names are ours alone

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        reading = self.reading()
        queues = GaugeMetricFamily(
            "offload_queue_messages",
            "Messages in each queue by state, approximate as SQS reports them; dead_letters: its DLQ.",
            labels=["queue", "state"],
        )
        for name, counts in sorted(reading.queues.items()):
            for state in STATES:
                queues.add_metric([name, state], counts.get(state, 0))
        yield queues
        if reading.outbox_backlog is not None and reading.outbox_set_aside is not None:
            yield GaugeMetricFamily(
                "offload_outbox_backlog",
                "Messages committed to the outbox that SQS has not accepted yet, set-aside rows excluded.",
                value=reading.outbox_backlog,
            )
            yield GaugeMetricFamily(
                "offload_outbox_set_aside",
                "Outbox messages the relay gave up on after SQS kept refusing them; an operator decides.",
                value=reading.outbox_set_aside,
            )

    def reading(self) -> Reading:
        """The last reading if it is fresh enough, else a new one (one at a time)."""
        with self._lock:
            broker = self._broker()
            age_ms = (self._clock() - self._read_at) * 1000
            if self._reading is None or broker is not self._read_from or age_ms >= self._max_age_ms():
                self._reading = Reading(self._queue_counts(broker), *self._outbox())
                self._read_at, self._read_from = self._clock(), broker
            return self._reading

    @staticmethod
    def _queue_counts(broker: Any) -> dict[str, dict[str, int]]:
        if not hasattr(broker, "queue_counts"):
            return {}
        counts = {}
        for name in sorted(broker.get_declared_queues()):
            try:
                counts[name] = broker.queue_counts(name)
            except (ConnectionClosed, SQSBrokerError) as e:
                # Its series go missing for this period: absent() alerts on that, a made-up 0 would not.
                logger.warning("Metrics: could not read the counts of queue %r: %s", name, e)
        return counts

    @staticmethod
    def _outbox() -> tuple[int | None, int | None]:
        from django.db import DatabaseError

        from web.core.models import OutboxMessage

        try:
            waiting = OutboxMessage.objects.filter(set_aside_at__isnull=True).count()
            set_aside = OutboxMessage.objects.filter(set_aside_at__isnull=False).count()
        except DatabaseError as e:
            logger.warning("Metrics: could not count the outbox: %s", e)
            return None, None
        return waiting, set_aside


@functools.cache
def waiting_work() -> WaitingWork:
    """This process's collector of queue depths and the outbox, on the broker Django configured."""
    import dramatiq
    from django.conf import settings

    return WaitingWork(dramatiq.get_broker, max_age_ms=lambda: settings.METRICS_QUEUE_CACHE_MS)
