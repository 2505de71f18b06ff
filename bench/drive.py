"""One client's measurements: `python -m bench.drive CONFIG_JSON`, run by the harness.

The driver is the producer side (a web process, say): it sends through the client's API while the
client's worker runs in its own process, collects actor starts, and reads the counting proxy's tally
around each measurement. It writes its figures as JSON to `config["out"]`.

Phases: "throughput" (bulk, steady with one producer, steady with eight), "bulk_only" (the bulk figure
alone, also run straight against the server to show what the proxy costs), "idle", "recovery", "retry".
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from bench.clients import load
from bench.common import (
    LONG_RETRY_MS,
    Starts,
    delta,
    percentile,
    proxy_snapshot,
    requests_of,
    worker_env,
)

#: How long a worker may take to start and run its first message on a busy 2-core machine.
WARM_UP_TIMEOUT_S = 120
#: After the last message ran: time for batched acks to be deleted before the tally is read.
SETTLE_S = 1.5
#: Worker threads for the throughput figures (the issue's 8), and for the recovery test's 20 messages.
THREADS = 8
RECOVERY_MESSAGES = 20
#: How long the recovery test waits for the first worker to start all 20 messages.
HOLD_TIMEOUT_S = 30
#: The recovery test gives up after this long and reports the configured visibility instead.
RECOVERY_GIVE_UP_S = 300
#: How long the worker holds the 20 messages before it is killed: past the first heartbeat of a
#: 60 s lease, so a client that extends leases is measured after an extension, not at its best.
RECOVERY_HOLD_S = 40
#: After the failed attempt: time for the retry to be enqueued and the original acked.
RETRY_CHECK_S = 15


class Driver:
    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config
        self.client = config["client"]
        self.proxy = config["proxy"]
        self.base_namespace = config["namespace"]
        self.logs = Path(config["logs"])
        self.starts = Starts()
        self.producer: Any = None
        self.namespace = ""
        self.workers: list[subprocess.Popen[bytes]] = []
        self._ready_written = False

    def use_queue(self, name: str) -> None:
        """Switch to a fresh queue (and a producer for it) for the next measurement.

        A worker that stops (or dies) may leave a long poll open on the server, and the server may
        hand the next message to that dead poll, hiding it for a whole visibility timeout. Fresh
        queues keep one measurement from disturbing the next.
        """
        if self.producer is not None:
            self.producer.close()
        self.namespace = f"{self.base_namespace}-{name}"
        self.producer = load(self.client).Producer(self.proxy, self.namespace)

    # --- workers ---------------------------------------------------------------------------------
    def spawn(self, generation: int, threads: int, stats_file: Path | None = None) -> subprocess.Popen[bytes]:
        log = open(self.logs / f"{self.namespace}-worker{generation}.log", "wb")  # noqa: SIM115
        args = [sys.executable, "-m", "bench.worker", self.client, self.proxy, self.namespace, str(threads)]
        if stats_file is not None:
            args.append(str(stats_file))
        worker = subprocess.Popen(
            args,
            env={**os.environ, **worker_env(self.starts.port, generation)},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        self.workers.append(worker)
        return worker

    def stop(self, worker: subprocess.Popen[bytes], *, kill: bool = False) -> None:
        if worker.poll() is None:
            worker.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
            try:
                worker.wait(timeout=60)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()

    def warm_up(self, generation: int, i: int) -> None:
        self.producer.send(i, time.time())
        self.producer.flush()
        if not self.starts.wait({(generation, i)}, WARM_UP_TIMEOUT_S):
            raise RuntimeError(f"{self.client}: the worker ran no message within {WARM_UP_TIMEOUT_S} s")

    def ready(self) -> None:
        """Tell the harness that this driver's start-up burst is over."""
        if self.config.get("ready") and not self._ready_written:
            Path(self.config["ready"]).write_text("ready")
            self._ready_written = True

    def snapshot(self) -> dict:
        if not self.config.get("counted", True):
            return {"actions": {}, "connections": 0}  # straight to the server: nothing counts
        return proxy_snapshot(self.proxy)

    def close(self) -> None:
        for worker in self.workers:
            self.stop(worker, kill=True)
        if self.producer is not None:
            self.producer.close()

    # --- figures 1-4 -----------------------------------------------------------------------------
    def bulk_only(self) -> dict[str, Any]:
        return {"bulk": self.bulk(self.config["bulk_messages"])}

    def throughput(self) -> dict[str, Any]:
        return {
            "bulk": self.bulk(self.config["bulk_messages"]),
            "steady1": self.steady(producers=1, duration=self.config["steady_s"], generation=2),
            "steady8": self.steady(producers=8, duration=self.config["steady_s"], generation=3),
        }

    def bulk(self, n: int) -> dict[str, Any]:
        self.use_queue("bulk")
        # One message first: creates the queue and warms the producer; the worker drains it too.
        self.producer.send(-1, time.time())
        self.producer.flush()
        stats_before = self.producer.stats()
        before = self.snapshot()
        items = [(i, 0.0) for i in range(n)]
        began = time.perf_counter()
        self.producer.send_bulk(items)
        self.producer.flush()
        enqueue_s = time.perf_counter() - began
        stats_file = self.logs / f"{self.namespace}-worker1-stats.json"
        worker = self.spawn(1, THREADS, stats_file)
        keys = {(1, i) for i in range(n)}
        complete = self.starts.wait(keys, self.config["drain_timeout_s"])
        self.stop(worker)  # a graceful stop: deletes what the client batched
        after = self.snapshot()
        stats_after = self.producer.stats()
        started = sorted(start for _, start in self.starts.get(keys).values())
        counts = delta(before, after)
        result: dict[str, Any] = {
            "messages": n,
            "ran": len(started),
            "complete": complete,
            "enqueue_s": enqueue_s,
            "enqueue_msgs_per_s": n / enqueue_s,
            # From the first start to the last: the worker's start-up is not the broker's speed.
            "drain_msgs_per_s": (len(started) - 1) / (started[-1] - started[0]) if len(started) > 1 else None,
            "requests": counts,
            "requests_per_msg": requests_of(counts) / n if self.config.get("counted", True) else None,
        }
        if stats_before is not None and stats_file.exists():
            # The client's own count of its requests: producer's delta plus the worker's whole life.
            own: dict[str, int] = {}
            worker_stats = json.loads(stats_file.read_text())
            for action in set(stats_after) | set(worker_stats):
                n_action = (
                    stats_after.get(action, 0) - stats_before.get(action, 0) + worker_stats.get(action, 0)
                )
                if n_action:
                    own[action] = n_action
            result["own_count"] = own
        return result

    def steady(self, *, producers: int, duration: float, generation: int) -> dict[str, Any]:
        self.use_queue(f"steady{producers}")
        worker = self.spawn(generation, THREADS)
        self.warm_up(generation, -1)
        time.sleep(SETTLE_S)
        before = self.snapshot()
        sent_ids: list[list[int]] = [[] for _ in range(producers)]
        began = time.time()
        end = began + duration

        def produce(k: int) -> None:
            i = k * 10_000_000
            while time.time() < end:
                self.producer.send(i, time.time())
                sent_ids[k].append(i)
                i += 1

        threads = [threading.Thread(target=produce, args=(k,)) for k in range(producers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        self.producer.flush()
        sent_s = time.time() - began
        keys = {(generation, i) for ids in sent_ids for i in ids}
        complete = self.starts.wait(keys, self.config["drain_timeout_s"])
        time.sleep(SETTLE_S)
        after = self.snapshot()
        self.stop(worker)
        runs = self.starts.get(keys)
        latencies = [(start - sent) * 1000 for sent, start in runs.values()]
        last = max((start for _, start in runs.values()), default=began)
        counts = delta(before, after)
        return {
            "producers": producers,
            "sent": len(keys),
            "ran": len(runs),
            "complete": complete,
            "send_msgs_per_s": len(keys) / sent_s,
            "e2e_msgs_per_s": len(runs) / (last - began) if runs else None,
            "latency_p50_ms": percentile(latencies, 50),
            "latency_p99_ms": percentile(latencies, 99),
            "requests": counts,
            "requests_per_msg": requests_of(counts) / len(keys) if keys else None,
        }

    # --- figures 5-7 -----------------------------------------------------------------------------
    def idle(self) -> dict[str, Any]:
        self.use_queue("q")
        worker = self.spawn(1, THREADS)
        self.warm_up(1, -1)
        time.sleep(5)  # past any ack batching and start-up look-ups
        self.ready()
        before = self.snapshot()
        seconds = self.config["idle_s"]
        time.sleep(seconds)
        after = self.snapshot()
        self.stop(worker)
        counts = delta(before, after)
        return {
            "seconds": seconds,
            "requests": counts,
            # Each client consumes one declared queue here.
            "requests_per_min_per_queue": requests_of(counts) * 60 / seconds,
        }

    def recovery(self) -> dict[str, Any]:
        self.use_queue("q")
        first = self.spawn(1, RECOVERY_MESSAGES)
        self.warm_up(1, -1)
        for i in range(RECOVERY_MESSAGES):
            self.producer.send_long(i)
        self.producer.flush()
        all_started = self.starts.wait({(1, i) for i in range(RECOVERY_MESSAGES)}, HOLD_TIMEOUT_S)
        # Some clients cap what one process holds (dramatiq_sqs: 10 per queue): the rest stay queued.
        held = sorted(i for _, i in self.starts.get({(1, i) for i in range(RECOVERY_MESSAGES)}))
        hold_s = self.config.get("hold_s", RECOVERY_HOLD_S)
        give_up_s = self.config.get("give_up_s", RECOVERY_GIVE_UP_S)
        time.sleep(hold_s)
        killed = time.time()
        self.stop(first, kill=True)
        # No warm-up message for the new worker: the killed one's open long poll could swallow it.
        second = self.spawn(2, RECOVERY_MESSAGES)
        self.ready()
        keys = {(2, i) for i in held}
        back = bool(held) and self.starts.wait(keys, give_up_s - (time.time() - killed))
        again = sorted(start for _, start in self.starts.get(keys).values())
        self.stop(second, kill=True)
        return {
            "sent": RECOVERY_MESSAGES,
            "held": len(held),
            "all_started_in_first_worker": all_started,
            "hold_s": hold_s,
            "all_back": back,
            "back_count": len(again),
            "recovery_s": again[-1] - killed if back else None,
            "first_back_s": again[0] - killed if again else None,
            "give_up_s": give_up_s,
        }

    def retry(self) -> dict[str, Any]:
        self.use_queue("q")
        worker = self.spawn(1, THREADS)
        self.warm_up(1, -1)
        self.producer.send_flaky(0)
        self.producer.flush()
        if not self.starts.wait({(1, 0)}, WARM_UP_TIMEOUT_S):
            raise RuntimeError(f"{self.client}: the failing message never ran")
        failed_at = self.starts.get({(1, 0)})[(1, 0)][1]
        time.sleep(RETRY_CHECK_S)
        queues = self.queue_counts()
        in_sqs = sum(sum(c.values()) for name, c in queues.items() if "dlq" not in name.lower())
        self.ready()
        result: dict[str, Any] = {
            "backoff_ms": LONG_RETRY_MS,
            "queues_after_15s": queues,
            "in_sqs_after_15s": in_sqs,
            "ran_again_after_s": None,
            "waited_s": None,
        }
        self._write(result)  # in case the harness stops this lane before the retry is due
        deadline = failed_at + LONG_RETRY_MS / 1000 + self.config["retry_margin_s"]
        while time.time() < deadline:
            runs = self.starts.all_runs((1, 0))
            if len(runs) > 1:
                result["ran_again_after_s"] = runs[1] - failed_at
                break
            time.sleep(1)
            result["waited_s"] = time.time() - failed_at
            if int(result["waited_s"]) % 30 == 0:
                self._write(result)
        self.stop(worker, kill=True)
        return result

    def queue_counts(self) -> dict[str, dict[str, int]]:
        import boto3

        from bench.common import boto3_credentials

        client = boto3.session.Session().client("sqs", endpoint_url=self.proxy, **boto3_credentials())
        names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
        names.append("ApproximateNumberOfMessagesDelayed")
        counts = {}
        for url in client.list_queues(QueueNamePrefix=self.namespace).get("QueueUrls", []):
            attributes = client.get_queue_attributes(QueueUrl=url, AttributeNames=names)["Attributes"]
            counts[url.rsplit("/", 1)[-1]] = {
                name.removeprefix("ApproximateNumberOf"): int(attributes.get(name, 0)) for name in names
            }
        return counts

    def _write(self, result: dict[str, Any]) -> None:
        Path(self.config["out"]).write_text(json.dumps(result, indent=1))


def main(argv: list[str]) -> None:
    config = json.loads(argv[0])
    driver = Driver(config)
    # The harness may stop a long lane early (SIGTERM): write what was measured and leave.
    signal.signal(signal.SIGTERM, lambda *_: (driver.close(), os._exit(0)))
    try:
        result = getattr(driver, config["phase"])()
        driver._write(result)
    finally:
        driver.ready()
        driver.close()


if __name__ == "__main__":
    main(sys.argv[1:])
