"""(B) offload's SQSBroker with a plain dramatiq Worker, at the broker's defaults."""

from __future__ import annotations

import os
import threading
import time
from typing import Any

import dramatiq
from dramatiq.errors import Retry

from bench.common import (
    FLAKY,
    LONG,
    LONG_RETRY_MS,
    LONG_RUN_S,
    NOOP,
    QUEUE,
    boto3_credentials,
    notify_started,
)
from brokers import SQSBroker

#: Set by `--offload-linger-ms`: a receive_linger other than the broker's default, for measuring it.
OFFLOAD_LINGER_ENV = "BENCH_OFFLOAD_RECEIVE_LINGER_MS"


def make_broker(endpoint_url: str, namespace: str) -> SQSBroker:
    options: dict[str, Any] = {}
    if os.environ.get(OFFLOAD_LINGER_ENV):
        options["receive_linger"] = int(os.environ[OFFLOAD_LINGER_ENV])
    broker = SQSBroker(namespace=namespace, endpoint_url=endpoint_url, **boto3_credentials(), **options)
    declare_actors(broker)
    return broker


def declare_actors(broker: dramatiq.Broker) -> dict[str, dramatiq.Actor]:
    """The three benchmark actors on any dramatiq broker (dramatiq_sqs uses them too)."""

    def noop(i: int, sent: float) -> None:
        notify_started(i, sent)

    def long(i: int) -> None:
        notify_started(i, 0.0)
        time.sleep(LONG_RUN_S)

    def flaky(i: int) -> None:
        notify_started(i, 0.0)
        raise Retry("a retry whose backoff is longer than SQS can delay", delay=LONG_RETRY_MS)

    return {
        NOOP: dramatiq.actor(noop, broker=broker, queue_name=QUEUE, actor_name=NOOP),
        # dramatiq's TimeLimit would otherwise stop it after 10 minutes.
        LONG: dramatiq.actor(
            long, broker=broker, queue_name=QUEUE, actor_name=LONG, time_limit=2 * LONG_RUN_S * 1000
        ),
        FLAKY: dramatiq.actor(flaky, broker=broker, queue_name=QUEUE, actor_name=FLAKY, max_retries=3),
    }


class Producer:
    def __init__(self, endpoint_url: str, namespace: str) -> None:
        self.broker = make_broker(endpoint_url, namespace)
        self.actors = self.broker.actors

    def send(self, i: int, sent: float) -> None:
        self.actors[NOOP].send(i, sent)

    def send_bulk(self, items: list[tuple[int, float]]) -> None:
        with self.broker.batch():
            for i, sent in items:
                self.actors[NOOP].send(i, sent)

    def send_long(self, i: int) -> None:
        self.actors[LONG].send(i)

    def send_flaky(self, i: int) -> None:
        self.actors[FLAKY].send(i)

    def flush(self) -> None:
        pass

    def stats(self) -> dict[str, int]:
        return self.broker.stats

    def close(self) -> None:
        self.broker.close()


def run_worker(endpoint_url: str, namespace: str, threads: int, stop: threading.Event) -> dict[str, int]:
    broker = make_broker(endpoint_url, namespace)
    return run_dramatiq_worker(broker, threads, stop, stats=lambda: broker.stats)


def run_dramatiq_worker(broker: dramatiq.Broker, threads: int, stop: threading.Event, stats=None) -> dict:
    worker = dramatiq.Worker(broker, worker_threads=threads)
    worker.start()
    stop.wait()
    worker.stop()
    broker.close()
    return stats() if stats else {}
