"""A real `manage.py rundramatiq` (dramatiq's main process, two worker processes and the metrics
process) on a database of its own and the test SQS server, scraped over HTTP as Prometheus would."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import pytest

from tasks.echo import echo
from tests.databases import OwnDatabase
from tests.waiting import wait_until
from tests.web.metrics.conftest import free_port
from tests.web.metrics.scrapes import Samples, new_token, parse, total, value

ROOT = Path(__file__).resolve().parents[3]


@dataclass
class Worker:
    process: subprocess.Popen[bytes]
    port: int
    token: str | None
    metrics_dir: Path
    log_path: Path
    log_file: IO[bytes]

    def get(
        self, path: str = "/metrics", authorization: str | None = None, method: str = "GET"
    ) -> tuple[int, str]:
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", method=method)
        if authorization:
            request.add_header("Authorization", authorization)
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as e:
            with e:
                return e.code, e.read().decode()

    def scrape(self) -> Samples:
        status, text = self.get(authorization=f"Bearer {self.token}")
        assert status == 200, text
        return parse(text)

    def scrape_when(self, check: Callable[[Samples], bool], what: str) -> Samples:
        """The first scrape that passes `check`: the workers count as they go, with nothing to await."""

        def ready() -> Samples | None:
            with contextlib.suppress(OSError):
                samples = self.scrape()
                return samples if check(samples) else None
            return None

        return wait_until(ready, timeout=60, interval=0.2, what=what)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@pytest.fixture
def start_worker(
    database: OwnDatabase, sqs_endpoint: str, namespace: str, tmp_path: Path
) -> Iterator[Callable[..., Worker]]:
    started: list[Worker] = []

    def start(*, token: str | None) -> Worker:
        port = free_port()
        metrics_dir = tmp_path / "metrics"
        env = {
            **os.environ,
            "DATABASE_URL": database.url,
            "SQS_ENDPOINT_URL": sqs_endpoint,
            "SQS_NAMESPACE": namespace,
            "GITHUB_API_URL": "http://127.0.0.1:9",  # nothing here may reach GitHub
            "METRICS_WORKER_HOST": "127.0.0.1",
            "METRICS_WORKER_PORT": str(port),
            "METRICS_DIR": str(metrics_dir),
            "METRICS_QUEUE_CACHE_MS": "0",  # every scrape reads SQS afresh
            "PYTHONUNBUFFERED": "1",
        }
        env.pop("METRICS_TOKEN", None)
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        if token:
            env["METRICS_TOKEN"] = token
        log_path = tmp_path / f"worker-{len(started)}.log"
        log_file = log_path.open("wb")
        process = subprocess.Popen(
            [sys.executable, "manage.py", "rundramatiq", "--processes", "2", "--threads", "2"],
            cwd=ROOT,
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
        worker = Worker(process, port, token, metrics_dir, log_path, log_file)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        if worker.process.poll() is None:
            worker.process.send_signal(signal.SIGTERM)
            try:
                worker.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                worker.process.kill()
                worker.process.wait(timeout=10)
        worker.log_file.close()


def leave_in_outbox(database: OwnDatabase, message_id: str) -> None:
    """A message committed while SQS could not be reached, not due for the relay for a long while."""
    sql = (
        "INSERT INTO core_outboxmessage (queue_name, actor_name, message_id, body, created_at,"
        " available_at, claim, attempts, last_error)"
        " VALUES ('default', 'echo', {id}, '{{}}', '2026-01-01 00:00:00+00:00',"
        " '2999-01-01 00:00:00+00:00', '', 0, '')"
    )
    if database.vendor == "sqlite":
        with contextlib.closing(sqlite3.connect(database.path, timeout=10)) as connection, connection:
            connection.execute(sql.format(id="?"), (message_id,))
        return
    import psycopg

    with psycopg.connect(**database.connect_args, autocommit=True) as connection:
        connection.execute(sql.format(id="%s"), (message_id,))


def dramatiq_total(samples: Samples, name: str) -> float:
    return value(samples, name, queue_name="default", actor_name="echo")


@pytest.mark.django_db(transaction=True)
def test_a_scrape_of_the_worker_shows_every_processs_messages_sqs_requests_queues_and_outbox(
    start_worker: Any, broker: Any, database: OwnDatabase
) -> None:
    worker = start_worker(token=new_token())
    for n in range(5):
        echo.send(f"hello {n}")
    # No text: the actor raises TypeError; one retry after 100 ms, then the dead-letter queue.
    echo.send_with_options(args=(), max_retries=1, min_backoff=100, max_backoff=100)
    leave_in_outbox(database, "late-1")
    leave_in_outbox(database, "late-2")

    samples = worker.scrape_when(
        lambda s: (
            dramatiq_total(s, "dramatiq_message_rejects_total") == 1
            and dramatiq_total(s, "dramatiq_messages_total") == 7
            and value(s, "offload_queue_messages", queue="default", state="dead_letters") == 1
            # The last acks reach SQS in a batch a moment after the runs are counted.
            and value(s, "offload_queue_messages", queue="default", state="in_flight") == 0
            # broker.stats reach the metrics once a second: wait for the workers' retry and dead
            # letter (sends), and for a receive, a delete and a count of each.
            and total(s, "offload_sqs_requests_total", action="SendMessage")
            + total(s, "offload_sqs_requests_total", action="SendMessageBatch")
            >= 2
            and all(
                total(s, "offload_sqs_requests_total", action=action) >= 1
                for action in ("ReceiveMessage", "DeleteMessageBatch", "GetQueueAttributes")
            )
        ),
        what="seven runs, one dead letter seen in its queue, the others deleted, the requests counted",
    )

    assert dramatiq_total(samples, "dramatiq_message_errors_total") == 2
    assert dramatiq_total(samples, "dramatiq_message_retries_total") == 1
    assert dramatiq_total(samples, "dramatiq_message_duration_milliseconds_count") == 7
    assert dramatiq_total(samples, "dramatiq_messages_inprogress") == 0
    depth = {
        state: value(samples, "offload_queue_messages", queue="default", state=state)
        for state in ("visible", "in_flight", "delayed", "dead_letters")
    }
    assert depth == {"visible": 0, "in_flight": 0, "delayed": 0, "dead_letters": 1}
    assert value(samples, "offload_outbox_backlog") == 2


@pytest.mark.django_db(transaction=True)
def test_the_worker_answers_a_scrape_without_the_right_token_with_404(start_worker: Any, broker: Any) -> None:
    worker = start_worker(token=new_token())
    echo.send("booted")
    worker.scrape_when(lambda s: dramatiq_total(s, "dramatiq_messages_total") == 1, what="one run")

    assert worker.get()[0] == 404
    assert worker.get(authorization="Bearer wrong")[0] == 404
    assert worker.get(authorization=f"Basic {worker.token}")[0] == 404
    assert worker.get("/other", authorization=f"Bearer {worker.token}")[0] == 404
    # Other methods as the web's /metrics answers them: a stranger's 404, the token holder's 405.
    for method in ("POST", "PUT", "DELETE", "HEAD"):
        assert worker.get(method=method)[0] == 404, method
    assert worker.get(method="POST", authorization=f"Bearer {worker.token}")[0] == 405
    assert worker.get("/other", method="POST", authorization=f"Bearer {worker.token}")[0] == 404
    assert worker.get(method="HEAD", authorization=f"Bearer {worker.token}") == (200, "")


@pytest.mark.django_db(transaction=True)
def test_without_a_token_the_worker_runs_messages_but_counts_and_serves_nothing(
    start_worker: Any, broker: Any, database: OwnDatabase
) -> None:
    worker = start_worker(token=None)
    echo.send("uncounted")
    wait_until(
        lambda: database.query("SELECT status FROM ops_taskrun") == [("succeeded",)],
        timeout=60,
        what="the worker to run the message",
    )

    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", worker.port), timeout=5).close()
    assert not worker.metrics_dir.exists()
