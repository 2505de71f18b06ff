"""The broker's reason to exist: few SQS requests per message, every message exactly once."""

from __future__ import annotations

import threading
from collections import Counter

import dramatiq

from tests.brokers.conftest import queue_counts

MESSAGES = 1_000


def test_a_thousand_batched_messages_are_each_processed_once_at_under_035_requests_per_message(
    sqs_broker, start_worker, sqs
):
    processed: Counter[int] = Counter()
    lock = threading.Lock()
    all_done = threading.Event()

    @dramatiq.actor(broker=sqs_broker, max_retries=0)
    def record(n):
        with lock:
            processed[n] += 1
            if len(processed) == MESSAGES:
                all_done.set()

    with sqs_broker.batch():
        for n in range(MESSAGES):
            record.send(n)
    start_worker(sqs_broker, threads=8)
    assert all_done.wait(timeout=90)
    sqs_broker.join("default", timeout=10_000)  # every delete done

    assert sorted(processed) == list(range(MESSAGES))
    assert set(processed.values()) == {1}
    assert queue_counts(sqs, sqs_broker.queue_url("default")) == {"visible": 0, "in_flight": 0, "delayed": 0}
    stats = sqs_broker.stats
    total = sum(stats.values())
    print(f"SQS requests for {MESSAGES} messages: {stats}; {total / MESSAGES:.3f} per message")
    assert total / MESSAGES <= 0.35
