"""The Lambda worker against the long-running worker: cold start and records a second, one no-op actor.

    .venv/bin/python -m bench.lambda_worker [--records 1000] [--runs 5]

`measure()` returns (and the command prints):
  lambda_cold_start_ms  worker_handler from the built package (built first when missing), in a
                        fresh bare interpreter: import of web.aws_lambda to its first answer, one SQS
                        record of the echo actor; the median of `runs`.
  lambda_records_per_s  records a second through worker_handler, fed 10 at a time by the test suite's
                        event source stand-in (receive, invoke, delete: what Lambda's poller does).
  worker_records_per_s  the same messages of the same no-op actor through a long-running dramatiq
                        Worker with one thread, as one Lambda container runs one batch at a time.

Both throughput figures run in this process, one after the other, against one local SQS server on
loopback, with the project's middleware (task runs recorded in a SQLite database of the run's own).
Local figures on this machine: they compare the two paths, they do not predict Lambda's.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench import lambda_cold_start

ROOT = Path(__file__).resolve().parent.parent
#: How long either path may take to drain the messages before the run is called broken.
DRAIN_TIMEOUT_S = 300


def measure(records: int = 1000, runs: int = 5) -> dict[str, float]:
    """The three figures of the module docstring."""
    results = {"lambda_cold_start_ms": cold_start_ms(runs)}
    results.update(throughput(records))
    return results


def cold_start_ms(runs: int) -> float:
    if not lambda_cold_start.ARCHIVE.exists():
        subprocess.run([sys.executable, str(ROOT / "deploy" / "package.py")], cwd=ROOT, check=True)
    with lambda_cold_start.deployment() as (package, env, endpoint):
        event = _one_record_event(endpoint)
        figures = lambda_cold_start.measure(package, env, "worker_handler", event, runs)
    return sorted(figures["cold"])[len(figures["cold"]) // 2]


def _one_record_event(endpoint: str) -> dict[str, Any]:
    """A record of the SQS sample carrying an echo message from the deployment's default queue."""
    import boto3

    sqs = boto3.client(
        "sqs",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="local",
        aws_secret_access_key="local",
    )
    url = sqs.get_queue_url(QueueName=f"{lambda_cold_start.NAMESPACE}-default")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    event = json.loads((lambda_cold_start.SAMPLES / "sqs_standard.json").read_text())
    record = event["Records"][0]
    record["eventSourceARN"] = arn
    record["body"] = json.dumps(
        {
            "queue_name": "default",
            "actor_name": "echo",
            "args": ["cold start"],
            "kwargs": {},
            "options": {},
            "message_id": str(uuid.uuid4()),
            "message_timestamp": int(time.time() * 1000),
        }
    )
    return {"Records": [record]}


def throughput(records: int) -> dict[str, float]:
    """Records a second through worker_handler and through a Worker, on one local server."""
    with tempfile.TemporaryDirectory() as work:
        _set_up_django(Path(work) / "db.sqlite3")
        from tests.conftest import running_local_sqs

        with running_local_sqs() as endpoint:
            return {
                "lambda_records_per_s": _through_lambda(endpoint, records),
                "worker_records_per_s": _through_worker(endpoint, records),
            }


def _set_up_django(database: Path) -> None:
    os.environ.update(
        DJANGO_SETTINGS_MODULE="tests.settings",
        DATABASE_URL=f"sqlite:///{database}",
        AWS_ACCESS_KEY_ID="local",
        AWS_SECRET_ACCESS_KEY="local",
        LOG_LEVEL="WARNING",
    )
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", "--noinput", verbosity=0)


class _Counter:
    """Counts the no-op actor's runs; `wait()` returns once `expected` have run."""

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.count = 0
        self._lock = threading.Lock()
        self._done = threading.Event()

    def ran(self) -> None:
        with self._lock:
            self.count += 1
            if self.count >= self.expected:
                self._done.set()

    def wait(self) -> None:
        if not self._done.wait(DRAIN_TIMEOUT_S):
            raise SystemExit(f"Only {self.count} of {self.expected} messages ran in {DRAIN_TIMEOUT_S} s.")


@contextlib.contextmanager
def _loaded_broker(endpoint: str, records: int, counter: _Counter) -> Iterator[Any]:
    """The project's actors and middleware on a fresh broker, plus the no-op actor, its queue filled."""
    import dramatiq

    from tests.conftest import project_actors_on

    def noop(n: int) -> None:
        counter.ran()

    with project_actors_on(endpoint, f"b{uuid.uuid4().hex[:12]}") as broker:
        actor = dramatiq.actor(noop, broker=broker, max_retries=0)
        with broker.batch():
            for n in range(records):
                actor.send(n)
        yield broker


def _through_lambda(endpoint: str, records: int) -> float:
    from tests.aws_lambda.event_source import EventSourceMapping
    from web.aws_lambda import worker_handler

    counter = _Counter(records)
    with _loaded_broker(endpoint, records, counter) as broker:
        mapping = EventSourceMapping(broker.client, broker.queue_url("default"), worker_handler)
        started = time.perf_counter()
        invocations = mapping.run_until_idle(limit=records)
        elapsed = time.perf_counter() - started
    reported = sum(len(invocation.reported) for invocation in invocations)
    if counter.count != records or reported:
        raise SystemExit(f"worker_handler ran {counter.count} of {records} records and reported {reported}.")
    return records / elapsed


def _through_worker(endpoint: str, records: int) -> float:
    import dramatiq

    counter = _Counter(records)
    with _loaded_broker(endpoint, records, counter) as broker:
        worker = dramatiq.Worker(broker, worker_threads=1, worker_timeout=100)
        started = time.perf_counter()
        worker.start()
        try:
            counter.wait()
            elapsed = time.perf_counter() - started
        finally:
            worker.stop()
    return records / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=5, help="cold starts measured")
    parser.add_argument("--json", help="also write the figures here")
    options = parser.parse_args()
    results = measure(records=options.records, runs=options.runs)
    sys.stdout.write(json.dumps(results, indent=2) + "\n")
    if options.json:
        Path(options.json).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
