"""Real `manage.py runscheduler` processes on a database of their own and the test SQS server.

The processes get their settings through the environment, as in production; the test reads what an
operator would: the run records and the lease in the database, and the messages waiting in SQS.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import boto3
import pytest

from tests.databases import DatabaseTemplate, OwnDatabase, migrated_template
from tests.waiting import wait_until

ROOT = Path(__file__).resolve().parents[2]
#: Short enough for a test, long enough that a busy two-core machine never lets the lease lapse.
LEASE_MS = 3_000
RENEW_MS = 250
POLL_INTERVAL_MS = 1_000


@pytest.fixture(scope="module")
def migrated_database(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DatabaseTemplate]:
    """A database with every migration applied, of the suite's kind, made once and copied by each test."""
    with migrated_template(tmp_path_factory.mktemp("scheduler-db")) as template:
        yield template


@pytest.fixture
def database(migrated_database: DatabaseTemplate) -> OwnDatabase:
    return migrated_database.copy()


@dataclass
class Scheduler:
    process: subprocess.Popen[bytes]
    log_path: Path
    log_file: IO[bytes]

    @property
    def pid(self) -> int:
        return self.process.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@pytest.fixture
def start_scheduler(
    database: OwnDatabase, sqs_endpoint: str, namespace: str, tmp_path: Path
) -> Iterator[Callable[..., Scheduler]]:
    started: list[Scheduler] = []

    def start(**settings: Any) -> Scheduler:
        env = {
            **os.environ,
            "DATABASE_URL": database.url,
            "SQS_ENDPOINT_URL": sqs_endpoint,
            "SQS_NAMESPACE": namespace,
            # Nothing here may call GitHub; a closed port makes sure nothing could.
            "GITHUB_API_URL": "http://127.0.0.1:9",
            "LOG_LEVEL": "INFO",
            "PYTHONUNBUFFERED": "1",
            **{name: str(value) for name, value in settings.items()},
        }
        log_path = tmp_path / f"scheduler-{len(started)}.log"
        log_file = log_path.open("wb")
        process = subprocess.Popen(
            [sys.executable, "manage.py", "runscheduler"],
            cwd=ROOT,
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
        scheduler = Scheduler(process, log_path, log_file)
        started.append(scheduler)
        return scheduler

    yield start
    for scheduler in started:
        if scheduler.process.poll() is None:
            scheduler.process.kill()
        scheduler.process.wait(timeout=10)
        scheduler.log_file.close()


@dataclass(frozen=True)
class Run:
    job: str
    slot: Any  # as the database returns it: a string from SQLite, a datetime from PostgreSQL
    status: str
    holder: str
    message_id: str


def runs(database: OwnDatabase, job: str | None = None) -> list[Run]:
    rows = database.query(
        "SELECT job, slot, status, holder, message_id FROM scheduler_scheduledrun ORDER BY slot"
    )
    return [Run(*row) for row in rows if job is None or row[0] == job]


def lease_holder(database: OwnDatabase) -> str:
    rows = database.query("SELECT holder FROM scheduler_schedulerlease WHERE name = 'scheduler'")
    return rows[0][0] if rows else ""


def message_ids_in_sqs(sqs_endpoint: str, namespace: str) -> list[str]:
    """The id of every message waiting in the namespace's queues (dead-letter queues aside)."""
    client = boto3.client("sqs", endpoint_url=sqs_endpoint, region_name="us-east-1")
    ids = []
    for url in client.list_queues(QueueNamePrefix=namespace).get("QueueUrls", []):
        if url.endswith("-dlq"):
            continue
        while received := client.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=600, WaitTimeSeconds=0
        ).get("Messages", []):
            ids.extend(json.loads(message["Body"])["message_id"] for message in received)
    client.close()
    return ids


def assert_each_run_was_sent_once(runs_now: list[Run], message_ids: list[str]) -> None:
    assert len(message_ids) == len(set(message_ids)), "a message was sent twice"
    by_id = {run.message_id: run for run in runs_now if run.message_id}
    # Every message in SQS belongs to a run record, and every enqueued run's message is there. A run
    # still "claimed" belonged to the killed leader: its message may or may not have left.
    assert set(message_ids) <= set(by_id)
    assert {run.message_id for run in runs_now if run.status == "enqueued"} <= set(message_ids)


def pid_of(holder: str) -> int:
    return int(holder.split(":")[-2])


def test_two_schedulers_enqueue_each_slot_once_and_the_survivor_takes_over_when_the_leader_is_killed(
    start_scheduler, database, sqs_endpoint, namespace
):
    timings = {
        "GITHUB_POLL_INTERVAL_MS": POLL_INTERVAL_MS,
        "SCHEDULER_LEASE_MS": LEASE_MS,
        "SCHEDULER_LEASE_RENEW_MS": RENEW_MS,
    }
    schedulers = [start_scheduler(**timings), start_scheduler(**timings)]

    # Both run; one leads and enqueues every poll slot.
    wait_until(
        lambda: len([r for r in runs(database, "poll_github") if r.status == "enqueued"]) >= 4,
        timeout=30,
        what="four poll slots to be enqueued",
    )
    leader_holder = lease_holder(database)
    leader = next(s for s in schedulers if s.pid == pid_of(leader_holder))
    survivor = next(s for s in schedulers if s is not leader)
    assert all(s.process.poll() is None for s in schedulers)
    assert {r.holder for r in runs(database)} == {leader_holder}
    # The survivor says so on its first try for the lease, which a slow start may put after those slots.
    wait_until(
        lambda: "is waiting: another scheduler holds the lease" in survivor.log(),
        timeout=15,
        what="the survivor to say it waits for the lease",
    )

    # Kill the leader the hard way: no chance to give up its lease.
    leader.process.send_signal(signal.SIGKILL)
    leader.process.wait(timeout=10)
    killed_at = time.monotonic()
    last_slot_of_leader = runs(database, "poll_github")[-1].slot
    survivor_holder = wait_until(
        lambda: (holder := lease_holder(database)) and pid_of(holder) == survivor.pid and holder,
        timeout=(LEASE_MS + RENEW_MS) / 1000 + 10,
        what="the survivor to take the lease",
    )
    takeover_s = time.monotonic() - killed_at
    wait_until(
        lambda: len([r for r in runs(database, "poll_github") if r.holder == survivor_holder]) >= 3,
        timeout=20,
        what="the survivor to enqueue three poll slots",
    )

    poll_runs = runs(database, "poll_github")
    first_of_survivor = next(r.slot for r in poll_runs if r.slot > last_slot_of_leader)
    print(
        f"takeover after SIGKILL: {takeover_s:.2f} s (lease {LEASE_MS} ms, renewed every {RENEW_MS} ms);"
        f" last slot of the leader {last_slot_of_leader}, first of the survivor {first_of_survivor}"
    )
    assert takeover_s < (LEASE_MS + RENEW_MS) / 1000 + 2
    slots = [r.slot for r in poll_runs]
    assert len(slots) == len(set(slots))
    assert all(r.holder == survivor_holder for r in poll_runs if r.slot > last_slot_of_leader)

    # A clean stop gives the lease up at once rather than letting it expire.
    survivor.process.send_signal(signal.SIGTERM)
    assert survivor.process.wait(timeout=15) == 0
    assert lease_holder(database) == ""
    assert f"Scheduler {survivor_holder!r} stopped." in survivor.log()
    # One message per run: no slot was sent twice, by either process. (Compared once both are
    # stopped: a live scheduler may enqueue between reading the runs and reading the queue.)
    assert_each_run_was_sent_once(runs(database), message_ids_in_sqs(sqs_endpoint, namespace))


def test_a_scheduler_enqueues_a_stale_poll_at_once_on_start_but_not_again_after_a_restart(
    start_scheduler, database, sqs_endpoint, namespace
):
    # The default ten-minute interval: the next slot is minutes away, so only the catch-up can poll.
    first = start_scheduler(SCHEDULER_LEASE_MS=LEASE_MS, SCHEDULER_LEASE_RENEW_MS=RENEW_MS)
    started = time.monotonic()
    (poll,) = wait_until(
        lambda: [r for r in runs(database, "poll_github") if r.status == "enqueued"],
        timeout=30,
        what="the first poll to be enqueued",
    )
    print(f"first poll enqueued {time.monotonic() - started:.2f} s after the scheduler was started")
    first.process.send_signal(signal.SIGINT)
    assert first.process.wait(timeout=15) == 0

    second = start_scheduler(SCHEDULER_LEASE_MS=LEASE_MS, SCHEDULER_LEASE_RENEW_MS=RENEW_MS)
    wait_until(lambda: "caught up" in second.log(), timeout=30, what="the second scheduler to catch up")

    poll_runs = runs(database, "poll_github")
    # A ten-minute slot boundary may pass between the two starts; then that slot runs, once.
    assert poll_runs[0] == poll
    assert len(poll_runs) in (1, 2)
    assert len({r.slot for r in poll_runs}) == len(poll_runs)
    # Compared once it is stopped: its per-minute jobs may enqueue between the two reads.
    second.process.send_signal(signal.SIGTERM)
    assert second.process.wait(timeout=15) == 0
    message_ids = message_ids_in_sqs(sqs_endpoint, namespace)
    assert_each_run_was_sent_once(runs(database), message_ids)
    assert poll.message_id in message_ids


def test_two_leaders_at_once_still_enqueue_each_slot_once(start_scheduler, database, sqs_endpoint, namespace):
    # Different lease names make both processes lead: the split brain the slot records guard against.
    timings = {
        "GITHUB_POLL_INTERVAL_MS": POLL_INTERVAL_MS,
        "SCHEDULER_LEASE_MS": LEASE_MS,
        "SCHEDULER_LEASE_RENEW_MS": RENEW_MS,
    }
    schedulers = [
        start_scheduler(SCHEDULER_LEASE_NAME="brain-a", **timings),
        start_scheduler(SCHEDULER_LEASE_NAME="brain-b", **timings),
    ]
    wait_until(
        lambda: all("now leads" in s.log() for s in schedulers), timeout=30, what="both schedulers to lead"
    )
    both_leading = [r.slot for r in runs(database, "poll_github")]

    wait_until(
        lambda: len([r for r in runs(database, "poll_github") if r.slot not in both_leading]) >= 5,
        timeout=30,
        what="five poll slots while both lead",
    )

    for scheduler in schedulers:
        scheduler.process.send_signal(signal.SIGTERM)
        assert scheduler.process.wait(timeout=15) == 0
    poll_runs = runs(database, "poll_github")
    assert len({r.slot for r in poll_runs}) == len(poll_runs)
    assert_each_run_was_sent_once(runs(database), message_ids_in_sqs(sqs_endpoint, namespace))
    # Both try every slot once both lead: each slot went to one of them, and the other stood down.
    contested = [r.slot for r in poll_runs if r.slot not in both_leading]
    stood_down = sum(s.log().count("was already enqueued by another scheduler") for s in schedulers)
    holders = Counter(r.holder for r in poll_runs)
    print(f"split brain: {len(contested)} slots, {stood_down} claims refused, runs per holder {holders}")
    # Without contention the test would prove nothing; how often the loser got to try before the
    # processes were stopped depends on the machine's load.
    assert stood_down >= 1
