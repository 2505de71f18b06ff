"""(C) dramatiq_sqs's SQSBroker with a plain dramatiq Worker, at its documented defaults."""

from __future__ import annotations

import threading

import dramatiq_sqs

from bench.clients.offload import declare_actors, run_dramatiq_worker
from bench.common import FLAKY, LONG, NOOP, boto3_credentials


def make_broker(endpoint_url: str, namespace: str) -> dramatiq_sqs.SQSBroker:
    broker = dramatiq_sqs.SQSBroker(namespace=namespace, endpoint_url=endpoint_url, **boto3_credentials())
    declare_actors(broker)
    return broker


class Producer:
    def __init__(self, endpoint_url: str, namespace: str) -> None:
        self.broker = make_broker(endpoint_url, namespace)
        self.actors = self.broker.actors

    def send(self, i: int, sent: float) -> None:
        self.actors[NOOP].send(i, sent)

    def send_bulk(self, items: list[tuple[int, float]]) -> None:
        # dramatiq_sqs has no batch send: its enqueue is one SendMessage per message.
        for i, sent in items:
            self.actors[NOOP].send(i, sent)

    def send_long(self, i: int) -> None:
        self.actors[LONG].send(i)

    def send_flaky(self, i: int) -> None:
        self.actors[FLAKY].send(i)

    def flush(self) -> None:
        pass

    def stats(self) -> None:
        return None

    def close(self) -> None:
        self.broker.close()


def run_worker(endpoint_url: str, namespace: str, threads: int, stop: threading.Event) -> dict:
    return run_dramatiq_worker(make_broker(endpoint_url, namespace), threads, stop)
