"""An SQS endpoint that goes away: clear errors, and a worker that carries on when it is back."""

from __future__ import annotations

import threading
from collections import Counter
from urllib.parse import urlsplit

import botocore.config
import dramatiq
import pytest
from dramatiq.errors import ConnectionClosed

from brokers import SQSBroker
from tests.brokers.conftest import wait_until
from tests.brokers.tcpproxy import CuttableProxy


@pytest.fixture
def proxy(sqs_endpoint):
    parts = urlsplit(sqs_endpoint)
    proxy = CuttableProxy(parts.hostname, parts.port)
    yield proxy
    proxy.close()


def _broker(proxy: CuttableProxy, namespace: str) -> SQSBroker:
    # One attempt per request keeps the test short; production keeps botocore's standard retries.
    config = botocore.config.Config(retries={"mode": "standard", "max_attempts": 1}, connect_timeout=1)
    return SQSBroker(
        namespace=namespace,
        endpoint_url=proxy.endpoint_url,
        region_name="us-east-1",
        middleware=[m() for m in dramatiq.middleware.default_middleware],
        config=config,
    )


def test_sending_while_sqs_is_unreachable_raises_connection_closed(proxy, namespace):
    broker = _broker(proxy, namespace)

    @dramatiq.actor(broker=broker)
    def task():
        pass

    task.send()
    proxy.cut()

    with pytest.raises(ConnectionClosed):
        task.send()
    broker.close()


def test_a_worker_rides_out_an_outage_and_runs_every_message_once(
    proxy, namespace, start_worker, monkeypatch, caplog
):
    monkeypatch.setattr(dramatiq.worker, "CONSUMER_RESTART_DELAY_SECS", 0.2)
    monkeypatch.setattr(dramatiq.worker, "POST_PROCESS_MESSAGE_RETRY_DELAY_SECS", 0.2)
    broker = _broker(proxy, namespace)
    runs: Counter[int] = Counter()
    lock = threading.Lock()

    @dramatiq.actor(broker=broker, max_retries=0)
    def task(n):
        with lock:
            runs[n] += 1

    with broker.batch():
        for n in range(10):
            task.send(n)
    start_worker(broker)
    wait_until(lambda: len(runs) == 10)

    proxy.cut()
    wait_until(lambda: any("connection error" in record.getMessage() for record in caplog.records))
    proxy.restore()
    with broker.batch():
        for n in range(10, 20):
            task.send(n)
    wait_until(lambda: len(runs) == 20, timeout=90)  # reconnecting backs off; slow on a busy machine
    broker.join("default", timeout=20_000)

    assert set(runs.values()) == {1}
    broker.close()
