"""The behaviour every dramatiq broker shares, run against StubBroker and SQSBroker alike."""

from __future__ import annotations

import threading
from typing import Any

import dramatiq
import pytest
from dramatiq.brokers.stub import StubBroker
from dramatiq.errors import QueueJoinTimeout, QueueNotFound
from dramatiq.middleware import default_middleware

from brokers import SQSBroker
from tests.brokers.conftest import queue_counts


@pytest.fixture(params=["stub", "sqs"])
def any_broker(request, make_broker) -> dramatiq.Broker:
    if request.param == "stub":
        broker = StubBroker(middleware=[m() for m in default_middleware], fail_fast_default=False)
        yield broker
        broker.close()
    else:
        yield make_broker()


def _dead_letter_count(broker: dramatiq.Broker, sqs: Any, queue_name: str) -> int:
    if isinstance(broker, StubBroker):
        return len(broker.dead_letters_by_queue[queue_name])
    assert isinstance(broker, SQSBroker)
    return queue_counts(sqs, broker.dead_letter_queue_url(queue_name))["visible"]


def test_an_actor_runs_with_the_arguments_it_was_sent(any_broker, start_worker):
    received = []

    @dramatiq.actor(broker=any_broker)
    def add(a, b, *, scale=1):
        received.append((a + b) * scale)

    add.send(1, 2, scale=10)
    start_worker(any_broker)
    any_broker.join(add.queue_name, timeout=10_000)

    assert received == [30]


def test_a_failing_actor_is_retried_until_it_succeeds(any_broker, start_worker):
    attempts = []

    @dramatiq.actor(broker=any_broker, min_backoff=10, max_backoff=50)
    def flaky():
        attempts.append(1)
        if len(attempts) < 3:
            raise RuntimeError("not yet")

    flaky.send()
    start_worker(any_broker)
    any_broker.join(flaky.queue_name, timeout=20_000)

    assert len(attempts) == 3


def test_a_message_that_keeps_failing_is_dead_lettered(any_broker, start_worker, sqs):
    @dramatiq.actor(broker=any_broker, max_retries=1, min_backoff=10, max_backoff=10)
    def broken():
        raise RuntimeError("always")

    broken.send()
    start_worker(any_broker)
    any_broker.join(broken.queue_name, timeout=20_000)

    assert _dead_letter_count(any_broker, sqs, broken.queue_name) == 1


def test_a_group_and_a_pipeline_run_each_step(any_broker, start_worker):
    seen = []
    lock = threading.Lock()

    @dramatiq.actor(broker=any_broker)
    def step(n):
        with lock:
            seen.append(n)
        return n + 1

    dramatiq.group([step.message(10), step.message(20)], broker=any_broker).run()
    dramatiq.pipeline([step.message(1), step.message()], broker=any_broker).run()
    start_worker(any_broker)
    for _ in range(2):  # the pipeline's second step is enqueued by its first
        any_broker.join(step.queue_name, timeout=10_000)

    assert sorted(seen) == [1, 2, 10, 20]


def _waiting(broker: dramatiq.Broker, sqs: Any, queue_name: str) -> int:
    """Messages of a queue not yet done: visible, delayed or in flight."""
    if isinstance(broker, StubBroker):
        return broker.queues[queue_name].qsize()
    assert isinstance(broker, SQSBroker)
    return sum(queue_counts(sqs, broker.queue_url(queue_name)).values())


def test_flush_drops_the_messages_of_a_queue(any_broker, sqs):
    @dramatiq.actor(broker=any_broker)
    def task():
        pass

    for _ in range(3):
        task.send()
    assert _waiting(any_broker, sqs, task.queue_name) == 3

    any_broker.flush(task.queue_name)

    assert _waiting(any_broker, sqs, task.queue_name) == 0


def test_flush_all_drops_the_messages_of_every_queue(any_broker, sqs):
    @dramatiq.actor(broker=any_broker, queue_name="first")
    def one():
        pass

    @dramatiq.actor(broker=any_broker, queue_name="second")
    def two():
        pass

    one.send()
    two.send()
    two.send()
    assert [_waiting(any_broker, sqs, name) for name in ("first", "second")] == [1, 2]

    any_broker.flush_all()

    assert [_waiting(any_broker, sqs, name) for name in ("first", "second")] == [0, 0]


def test_join_gives_up_after_its_timeout_while_messages_wait(any_broker):
    @dramatiq.actor(broker=any_broker)
    def task():
        pass

    task.send()

    with pytest.raises(QueueJoinTimeout):
        any_broker.join(task.queue_name, timeout=300)


def test_consuming_or_joining_an_undeclared_queue_is_an_error(any_broker):
    with pytest.raises(QueueNotFound):
        any_broker.consume("never-declared")
    with pytest.raises(QueueNotFound):
        any_broker.join("never-declared", timeout=100)
