"""Long polls, prefetch, batched acks, leases and releases."""

from __future__ import annotations

import threading
import time

import dramatiq
import pytest

from tests.brokers.conftest import queue_counts, wait_until


def _drain(consumer, *, idle_polls: int = 3) -> list:
    """Take messages from a consumer until it has returned None idle_polls times in a row."""
    taken, idle = [], 0
    while idle < idle_polls:
        message = next(consumer)
        if message is None:
            idle += 1
        else:
            taken.append(message)
            idle = 0
    return taken


def test_an_idle_consumer_long_polls_instead_of_asking_every_worker_timeout(sqs_broker):
    sqs_broker.declare_queue("default")
    sqs_broker.queue_url("default")
    consumer = sqs_broker.consume("default", prefetch=8, timeout=100)
    try:
        nones = [next(consumer) for _ in range(25)]  # 2.5 s of worker timeouts
    finally:
        consumer.close()

    assert nones == [None] * 25
    # One 20-second long poll covers them all: at most 3 receives a minute when idle.
    assert sqs_broker.stats["ReceiveMessage"] == 1


def test_received_but_unacked_messages_never_exceed_the_prefetch(sqs_broker, sqs):
    @dramatiq.actor(broker=sqs_broker)
    def task(n):
        pass

    with sqs_broker.batch():
        for n in range(20):
            task.send(n)
    consumer = sqs_broker.consume("default", prefetch=3, timeout=100)
    try:
        first = _drain(consumer)
        assert len(first) == 3
        assert queue_counts(sqs, sqs_broker.queue_url("default"))["in_flight"] == 3

        consumer.ack(first[0])
        consumer.ack(first[1])
        second = _drain(consumer)
        assert len(second) == 2
    finally:
        consumer.close()


def test_receives_fetch_up_to_ten_messages_while_a_larger_prefetch_keeps_more_running(sqs_broker):
    @dramatiq.actor(broker=sqs_broker)
    def task(n):
        pass

    with sqs_broker.batch():
        for n in range(30):
            task.send(n)
    consumer = sqs_broker.consume("default", prefetch=25, timeout=100)
    taken: list = []

    def up_to_the_prefetch() -> bool:
        taken.extend(_drain(consumer, idle_polls=1))  # however slowly receives come back on a busy machine
        return len(taken) >= 25

    try:
        wait_until(up_to_the_prefetch, what="25 messages taken")
        taken.extend(_drain(consumer))  # and not one more while none is acked
    finally:
        consumer.close()

    assert len(taken) == 25
    assert sqs_broker.stats["ReceiveMessage"] <= 4  # 10 + 10 + 5, plus at most one partial


def test_acks_are_deleted_ten_at_a_time(sqs_broker, sqs):
    @dramatiq.actor(broker=sqs_broker)
    def task(n):
        pass

    with sqs_broker.batch():
        for n in range(20):
            task.send(n)
    consumer = sqs_broker.consume("default", prefetch=20, timeout=100)
    try:
        for message in _drain(consumer):
            consumer.ack(message)
        sqs_broker.join("default", timeout=10_000)
    finally:
        consumer.close()

    assert sqs_broker.stats["DeleteMessageBatch"] == 2
    assert queue_counts(sqs, sqs_broker.queue_url("default")) == {"visible": 0, "in_flight": 0, "delayed": 0}


def test_acks_left_in_a_partial_batch_are_deleted_when_the_consumer_closes(make_broker, sqs):
    broker = make_broker(ack_interval=900)

    @dramatiq.actor(broker=broker)
    def task(n):
        pass

    for n in range(3):
        task.send(n)
    consumer = broker.consume("default", prefetch=5, timeout=100)
    for message in _drain(consumer):
        consumer.ack(message)
    consumer.close()

    assert broker.stats["DeleteMessageBatch"] == 1
    assert queue_counts(sqs, broker.queue_url("default")) == {"visible": 0, "in_flight": 0, "delayed": 0}


def test_a_task_that_outlives_its_lease_runs_once_while_another_worker_watches(
    make_broker, start_worker, sqs
):
    lease_ms = 3_000  # heartbeats every 1.5 s: a busy machine has that much slack
    runs = []
    done = threading.Event()
    brokers = [make_broker(visibility_timeout=lease_ms), make_broker(visibility_timeout=lease_ms)]

    for broker in brokers:

        @dramatiq.actor(broker=broker, actor_name="slow", max_retries=0)
        def slow():
            runs.append(time.monotonic())
            time.sleep(2 * lease_ms / 1000)  # the work itself: two leases long
            done.set()

    brokers[0].actors["slow"].send()
    start_worker(brokers[0])
    wait_until(lambda: runs)
    start_worker(brokers[1])  # would receive the message if its lease ever ran out
    assert done.wait(timeout=20)
    brokers[0].join("default", timeout=10_000)

    assert len(runs) == 1
    assert brokers[0].stats["ChangeMessageVisibilityBatch"] >= 2


def test_messages_prefetched_but_not_started_are_released_at_once_on_shutdown(make_broker, start_worker, sqs):
    first = make_broker()
    started = threading.Event()
    release = threading.Event()

    @dramatiq.actor(broker=first, actor_name="task", max_retries=0)
    def blocking(n):
        started.set()
        release.wait(10)

    with first.batch():
        for n in range(6):
            blocking.send(n)
    worker = start_worker(first, threads=1)
    assert started.wait(10)
    wait_until(lambda: queue_counts(sqs, first.queue_url("default"))["in_flight"] == 2)  # prefetch 2
    stopping = threading.Thread(target=worker.stop)
    stopping.start()
    wait_until(lambda: not worker.workers[0].running)  # it takes no new message from here on
    release.set()
    stopping.join(10)
    sends_before = first.stats.get("SendMessage", 0) + first.stats.get("SendMessageBatch", 0)

    # Nothing is left hidden: the unstarted message is visible again within moments, not after its
    # 60 s lease (a receive that was already under way is released as soon as it returns).
    url = first.queue_url("default")
    wait_until(lambda: queue_counts(sqs, url)["in_flight"] == 0, timeout=5)
    assert queue_counts(sqs, url)["visible"] == 5  # six sent, one done
    assert first.stats.get("SendMessage", 0) + first.stats.get("SendMessageBatch", 0) == sends_before


@pytest.mark.parametrize("delay_ms", [300, 1_500])
def test_a_delayed_message_never_runs_before_its_delay_is_over(sqs_broker, start_worker, delay_ms):
    started = []

    @dramatiq.actor(broker=sqs_broker)
    def task():
        started.append(time.time() * 1000)

    message = task.send_with_options(delay=delay_ms)
    start_worker(sqs_broker)
    wait_until(lambda: started)

    assert started[0] >= message.options["eta"]


def test_a_backlog_is_drained_without_lingering_between_full_receives(make_broker, start_worker):
    # The linger is for trickling traffic only: were it applied between full receives, this drain
    # would wait a minute per batch.
    broker = make_broker(receive_linger=60_000)
    done = []

    @dramatiq.actor(broker=broker)
    def task(n):
        done.append(n)

    with broker.batch():
        for n in range(60):
            task.send(n)
    start_worker(broker, threads=8)
    wait_until(lambda: len(done) == 60, timeout=30)

    assert sorted(done) == list(range(60))
