"""Receives in flight together for a backlog, one long poll once it is gone, no linger for a trickle."""

from __future__ import annotations

import threading
from typing import Any

import dramatiq

from tests.brokers.conftest import queue_counts, wait_until


class ReceivesInFlight:
    """Watches a broker's own boto3 client: how many ReceiveMessage requests are open at once."""

    def __init__(self, client: Any) -> None:
        self._lock = threading.Lock()
        self.open = 0
        self.most_at_once = 0
        self.started = 0
        client.meta.events.register("before-call.sqs.ReceiveMessage", self._began)
        client.meta.events.register("after-call.sqs.ReceiveMessage", self._ended)
        client.meta.events.register("after-call-error.sqs.ReceiveMessage", self._ended)

    def _began(self, **_: Any) -> None:
        with self._lock:
            self.open += 1
            self.started += 1
            self.most_at_once = max(self.most_at_once, self.open)

    def _ended(self, **_: Any) -> None:
        with self._lock:
            self.open -= 1


def _send(broker, count: int) -> None:
    @dramatiq.actor(broker=broker, actor_name="task")
    def task(n):
        pass

    with broker.batch():
        for n in range(count):
            task.send(n)


def _take(consumer, *, idle_polls: int = 3, ack: bool = False) -> list:
    """Messages from a consumer until it returned None idle_polls times in a row; acked if asked."""
    taken, idle = [], 0
    while idle < idle_polls:
        message = next(consumer)
        if message is None:
            idle += 1
            continue
        taken.append(message)
        idle = 0
        if ack:
            consumer.ack(message)
    return taken


def test_a_backlog_is_received_with_more_than_one_receive_in_flight_each_bringing_a_full_batch(sqs_broker):
    _send(sqs_broker, 200)
    receives = ReceivesInFlight(sqs_broker.client)
    consumer = sqs_broker.consume("default", prefetch=20, timeout=100)
    try:
        taken = _take(consumer, ack=True)
    finally:
        consumer.close()

    assert sorted(message.args[0] for message in taken) == list(range(200))
    assert receives.most_at_once >= 2
    # 20 full receives, and the empty ones that found the queue dry at the end.
    assert sqs_broker.stats["ReceiveMessage"] <= 20 + 4


def test_pipelined_receives_never_hold_more_unacked_messages_than_the_prefetch(sqs_broker, sqs):
    _send(sqs_broker, 40)
    consumer = sqs_broker.consume("default", prefetch=16, timeout=100)  # receives of 10 and 6
    try:
        first = _take(consumer)
        assert len(first) == 16
        assert queue_counts(sqs, sqs_broker.queue_url("default"))["in_flight"] == 16

        for message in first[:10]:
            consumer.ack(message)
        second = _take(consumer)
        assert len(second) == 10
        # The acked ten are deleted in a batch by the lease keeper, a moment after the acks.
        wait_until(
            lambda: queue_counts(sqs, sqs_broker.queue_url("default"))["in_flight"] == 16,
            what="the acked ten deleted, sixteen held",
        )
    finally:
        consumer.close()


def test_once_a_backlog_is_drained_a_single_long_poll_is_left(sqs_broker):
    _send(sqs_broker, 60)
    receives = ReceivesInFlight(sqs_broker.client)
    consumer = sqs_broker.consume("default", prefetch=30, timeout=100)  # three pollers
    try:
        assert len(_take(consumer, ack=True)) == 60
        # The pipelined receives wait 1 s at most: then only the lead's 20 s long poll is open.
        wait_until(lambda: receives.open == 1, timeout=5, what="one receive left open")
        before = receives.started
        nones = [next(consumer) for _ in range(25)]  # 2.5 s of worker timeouts
        after = receives.started
    finally:
        consumer.close()

    assert nones == [None] * 25
    assert after - before <= 1  # one 20 s poll at a time: at most 3 receives a minute when idle


def test_a_message_arriving_at_a_low_rate_is_received_without_lingering(make_broker):
    # A linger of a minute would hold the second message back for most of that minute, were the
    # linger applied to traffic this slow.
    broker = make_broker(receive_linger=60_000)
    receives = ReceivesInFlight(broker.client)

    @dramatiq.actor(broker=broker)
    def task(n):
        pass

    consumer = broker.consume("default", prefetch=10, timeout=100)
    try:
        wait_until(lambda: receives.open == 1, what="the first long poll")
        # Quiet for 2 s: a linger sized to bring a whole batch at this rate would last over 20 s.
        assert [next(consumer) for _ in range(20)] == [None] * 20
        task.send(1)
        first = wait_until(lambda: next(consumer), what="the first message")
        consumer.ack(first)
        # The next long poll is open at once, so the next message is delivered when it comes.
        wait_until(lambda: receives.open == 1, what="the next long poll")
        task.send(2)
        second = wait_until(lambda: next(consumer), what="the second message")
    finally:
        consumer.close()

    assert (first.args, second.args) == ((1,), (2,))
    assert broker.stats["ReceiveMessage"] == receives.started == 2
