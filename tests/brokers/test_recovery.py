"""A worker process that dies gives its messages back within about one lease."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time

import dramatiq

from tests.brokers.conftest import wait_until

LEASE_MS = 3_000
MESSAGES = 20


def test_the_messages_of_a_killed_worker_run_again_within_about_one_lease(
    make_broker, start_worker, sqs_endpoint, namespace
):
    sender = make_broker(visibility_timeout=LEASE_MS)

    @dramatiq.actor(broker=sender, actor_name="hold")
    def hold(n):
        pass

    with sender.batch():
        for n in range(MESSAGES):
            hold.send(n)
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.brokers.holding_worker", sqs_endpoint, namespace, str(LEASE_MS)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        started = {process.stdout.readline().strip() for _ in range(MESSAGES)}
        assert started == {f"started {n}" for n in range(MESSAGES)}
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
        process.stdout.close()
    killed_at = time.monotonic()

    rerun = set()
    lock = threading.Lock()
    receiver = make_broker(visibility_timeout=LEASE_MS)

    @dramatiq.actor(broker=receiver, actor_name="hold")
    def hold_again(n):
        with lock:
            rerun.add(n)

    start_worker(receiver, threads=8)
    wait_until(lambda: len(rerun) == MESSAGES, timeout=60)
    recovered_in = time.monotonic() - killed_at
    print(
        f"{MESSAGES} messages of a killed worker ran again after {recovered_in:.1f} s (lease {LEASE_MS} ms)"
    )

    assert rerun == set(range(MESSAGES))
