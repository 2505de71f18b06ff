"""What every client and the harness share: names, dummy credentials, and actor-start notifications.

Each actor, in whichever worker process runs it, reports its start with one UDP datagram on loopback
("<worker generation> <message number> <send time> <start time>"); the driver process collects them.
Every client pays the same for this, and the clock is the same machine's.
"""

from __future__ import annotations

import json
import math
import os
import socket
import threading
import time
import urllib.request

#: Dummy credentials and region: every endpoint is on loopback, nothing here ever talks to AWS.
ACCESS_KEY = "bench"
SECRET_KEY = "bench"
REGION = "us-east-1"
#: The one queue each client uses, under its namespace.
QUEUE = "bench"
#: Actors' names, the same for every client.
NOOP, LONG, FLAKY = "noop", "long", "flaky"
#: The retry backoff that SQS cannot express as a delay (its DelaySeconds stop at 15 minutes).
LONG_RETRY_MS = 16 * 60 * 1000
#: A long-running message runs this long (the recovery test kills its worker long before).
LONG_RUN_S = 3600
_NOTIFY_ENV = "BENCH_NOTIFY_PORT"
_GEN_ENV = "BENCH_WORKER_GEN"


def boto3_credentials() -> dict[str, str]:
    return {"aws_access_key_id": ACCESS_KEY, "aws_secret_access_key": SECRET_KEY, "region_name": REGION}


# --- actor side ----------------------------------------------------------------------------------
_local = threading.local()


def notify_started(i: int, sent: float) -> None:
    """Called first thing by every actor: tells the driver that message `i` started now."""
    now = time.time()
    sock = getattr(_local, "sock", None)
    if sock is None:
        sock = _local.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    port = int(os.environ[_NOTIFY_ENV])
    sock.sendto(f"{os.environ.get(_GEN_ENV, '1')} {i} {sent!r} {now!r}".encode(), ("127.0.0.1", port))


def worker_env(notify_port: int, generation: int) -> dict[str, str]:
    return {_NOTIFY_ENV: str(notify_port), _GEN_ENV: str(generation)}


# --- driver side ---------------------------------------------------------------------------------
class Starts:
    """Collects actor-start datagrams: the first start of each (generation, message number)."""

    def __init__(self) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * 1024 * 1024)
        self._sock.bind(("127.0.0.1", 0))
        self.port = self._sock.getsockname()[1]
        self._cond = threading.Condition()
        self._starts: dict[tuple[int, int], tuple[float, float]] = {}
        self._runs: dict[tuple[int, int], list[float]] = {}
        self.duplicates = 0
        threading.Thread(target=self._receive, name="starts", daemon=True).start()

    def _receive(self) -> None:
        while True:
            data = self._sock.recv(256)
            generation, i, sent, started = data.decode().split()
            key = (int(generation), int(i))
            with self._cond:
                self._runs.setdefault(key, []).append(float(started))
                if key in self._starts:
                    self.duplicates += 1
                else:
                    self._starts[key] = (float(sent), float(started))
                    self._cond.notify_all()

    def wait(self, keys: set[tuple[int, int]], timeout: float) -> bool:
        """Wait until every key has started; False if `timeout` seconds pass first."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not keys.issubset(self._starts.keys()):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(min(remaining, 1.0))
            return True

    def all_runs(self, key: tuple[int, int]) -> list[float]:
        """Every start of one message (a retry runs it again), in order of arrival."""
        with self._cond:
            return list(self._runs.get(key, []))

    def get(self, keys: set[tuple[int, int]]) -> dict[tuple[int, int], tuple[float, float]]:
        with self._cond:
            return {key: self._starts[key] for key in keys if key in self._starts}


def proxy_snapshot(proxy_url: str) -> dict:
    """The counting proxy's tally: {"actions": {action: n}, "connections": n}."""
    with urllib.request.urlopen(proxy_url + "/__bench__/counts", timeout=30) as response:
        return json.load(response)


def delta(before: dict, after: dict) -> dict[str, int]:
    actions = {
        action: after["actions"].get(action, 0) - before["actions"].get(action, 0)
        for action in after["actions"]
    }
    actions = {action: n for action, n in actions.items() if n}
    actions["(connections)"] = after["connections"] - before["connections"]
    return actions


def requests_of(counts: dict[str, int]) -> int:
    return sum(n for action, n in counts.items() if not action.startswith("("))


def percentile(values: list[float], q: float) -> float | None:
    """The q-th percentile (0-100) by nearest rank."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]
