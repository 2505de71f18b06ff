"""(D) Celery with kombu's SQS transport, thread pool, at its documented defaults.

Only what the setup needs is configured: the loopback endpoint and dummy credentials in the broker
URL, the region, plain HTTP, and no result backend (the tasks return nothing).
"""

from __future__ import annotations

import threading
import time
from urllib.parse import urlsplit

from celery import Celery

from bench.common import (
    ACCESS_KEY,
    FLAKY,
    LONG,
    LONG_RETRY_MS,
    LONG_RUN_S,
    NOOP,
    QUEUE,
    REGION,
    SECRET_KEY,
    notify_started,
)


def queue_name(namespace: str) -> str:
    return f"{namespace}-{QUEUE}"


def make_app(endpoint_url: str, namespace: str) -> Celery:
    endpoint = urlsplit(endpoint_url)
    app = Celery("bench", broker=f"sqs://{ACCESS_KEY}:{SECRET_KEY}@{endpoint.hostname}:{endpoint.port}")
    app.conf.update(
        broker_transport_options={"region": REGION, "is_secure": False},
        broker_connection_retry_on_startup=True,
        task_default_queue=queue_name(namespace),
        task_ignore_result=True,
        worker_hijack_root_logger=False,
    )

    @app.task(name=NOOP)
    def noop(i: int, sent: float) -> None:
        notify_started(i, sent)

    @app.task(name=LONG)
    def long(i: int) -> None:
        notify_started(i, 0.0)
        time.sleep(LONG_RUN_S)

    @app.task(name=FLAKY, bind=True, max_retries=3)
    def flaky(self, i: int) -> None:
        notify_started(i, 0.0)
        raise self.retry(countdown=LONG_RETRY_MS / 1000)

    return app


class Producer:
    def __init__(self, endpoint_url: str, namespace: str) -> None:
        self.app = make_app(endpoint_url, namespace)
        self.tasks = self.app.tasks

    def send(self, i: int, sent: float) -> None:
        self.tasks[NOOP].delay(i, sent)

    def send_bulk(self, items: list[tuple[int, float]]) -> None:
        # Celery's documented way to send many tasks: one producer (and connection) for all of them.
        with self.app.producer_or_acquire() as producer:
            for i, sent in items:
                self.tasks[NOOP].apply_async((i, sent), producer=producer)

    def send_long(self, i: int) -> None:
        self.tasks[LONG].delay(i)

    def send_flaky(self, i: int) -> None:
        self.tasks[FLAKY].delay(i)

    def flush(self) -> None:
        pass

    def stats(self) -> None:
        return None

    def close(self) -> None:
        self.app.close()


def run_worker(endpoint_url: str, namespace: str, threads: int, stop: threading.Event) -> dict:
    # Celery installs its own SIGTERM handler (warm shutdown); `stop` is not needed.
    app = make_app(endpoint_url, namespace)
    app.worker_main(
        [
            "worker",
            "--pool=threads",
            f"--concurrency={threads}",
            "--loglevel=WARNING",
            "-Q",
            queue_name(namespace),
        ]
    )
    return {}
