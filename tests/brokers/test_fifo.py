"""FIFO queues: order within a group, and retries that are not mistaken for duplicates."""

from __future__ import annotations

import dramatiq

from tests.brokers.conftest import wait_until


def test_messages_of_one_group_run_in_the_order_they_were_sent(sqs_broker, start_worker):
    order = []

    @dramatiq.actor(broker=sqs_broker, queue_name="ledger.fifo", message_group_id="account-1")
    def post(n):
        order.append(n)

    with sqs_broker.batch():
        for n in range(6):
            post.send(n)
    start_worker(sqs_broker, threads=1)
    sqs_broker.join("ledger.fifo", timeout=20_000)

    assert order == list(range(6))


def test_a_retry_on_a_fifo_queue_runs_again_instead_of_being_dropped_as_a_duplicate(sqs_broker, start_worker):
    attempts = []

    @dramatiq.actor(broker=sqs_broker, queue_name="ledger.fifo", min_backoff=10)
    def settle():
        attempts.append(1)
        if len(attempts) < 2:
            raise RuntimeError("try again")

    settle.send()
    start_worker(sqs_broker)
    wait_until(lambda: len(attempts) == 2)
    sqs_broker.join("ledger.fifo", timeout=10_000)

    assert len(attempts) == 2
