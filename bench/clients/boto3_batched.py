"""(A) A hand-batched boto3 loop: the practical limit of requests per message, not a task queue.

Producer: SendMessageBatch of 10 (concurrent senders share one buffer; a short linger sends a part
batch). Worker: one receiver (ReceiveMessage of 10, 20 s long poll) feeding a pool of threads, and
acks deleted with DeleteMessageBatch of 10 (or after a short linger). Nothing here is durable: a
crash loses whatever sits in the buffers, which is why no task queue should look like this.
"""

from __future__ import annotations

import json
import queue
import threading
import time
from typing import Any

import boto3

from bench.common import QUEUE, boto3_credentials, notify_started

#: Entries per batch request (sqs-batch-api-actions).
BATCH = 10
#: A part batch waits at most this long for more entries.
LINGER_S = 0.02
#: The receive's long poll (SQS allows at most 20 s).
WAIT_S = 20


def queue_name(namespace: str) -> str:
    return f"{namespace}-{QUEUE}"


def _client(endpoint_url: str):
    return boto3.session.Session().client("sqs", endpoint_url=endpoint_url, **boto3_credentials())


def _queue_url(client, namespace: str) -> str:
    return client.create_queue(QueueName=queue_name(namespace))["QueueUrl"]


class _Batcher:
    """Collects entries from any thread; whoever adds the tenth sends the batch, a timer the rest."""

    def __init__(self, send) -> None:
        self._send = send
        self._lock = threading.Lock()
        self._entries: list = []
        self._oldest = 0.0
        self._closed = threading.Event()
        threading.Thread(target=self._linger, daemon=True).start()

    def add(self, entry) -> None:
        with self._lock:
            if not self._entries:
                self._oldest = time.monotonic()
            self._entries.append(entry)
            full = self._take() if len(self._entries) >= BATCH else None
        if full:
            self._send(full)

    def flush(self) -> None:
        with self._lock:
            entries = self._take()
        if entries:
            self._send(entries)

    def close(self) -> None:
        self._closed.set()
        self.flush()

    def _take(self) -> list:
        entries, self._entries = self._entries[:BATCH], self._entries[BATCH:]
        self._oldest = time.monotonic()
        return entries

    def _linger(self) -> None:
        while not self._closed.wait(LINGER_S / 2):
            with self._lock:
                due = self._entries and time.monotonic() - self._oldest >= LINGER_S
                entries = self._take() if due else None
            if entries:
                self._send(entries)


class Producer:
    def __init__(self, endpoint_url: str, namespace: str) -> None:
        self.client = _client(endpoint_url)
        self.url = _queue_url(self.client, namespace)
        self._batcher = _Batcher(self._send_batch)

    def _send_batch(self, bodies: list[str]) -> None:
        entries = [{"Id": str(n), "MessageBody": body} for n, body in enumerate(bodies)]
        response = self.client.send_message_batch(QueueUrl=self.url, Entries=entries)
        if response.get("Failed"):
            raise RuntimeError(f"SendMessageBatch failed for {response['Failed']}")

    def send(self, i: int, sent: float) -> None:
        self._batcher.add(json.dumps({"i": i, "sent": sent}))

    def send_bulk(self, items: list[tuple[int, float]]) -> None:
        for start in range(0, len(items), BATCH):
            self._send_batch([json.dumps({"i": i, "sent": sent}) for i, sent in items[start : start + BATCH]])

    def send_long(self, i: int) -> None:
        raise NotImplementedError("a hand loop has no long-running tasks to recover")

    def send_flaky(self, i: int) -> None:
        raise NotImplementedError("a hand loop has no retries")

    def flush(self) -> None:
        self._batcher.flush()

    def stats(self) -> None:
        return None

    def close(self) -> None:
        self._batcher.close()


class _HandLoop:
    """One receiver long-polls batches of 10 for a pool of threads; acks go out in batches."""

    def __init__(self, client: Any, url: str, threads: int) -> None:
        self.client = client
        self.url = url
        self.work: queue.Queue = queue.Queue()
        self.room = threading.Semaphore(2 * threads)  # at most this many received and not yet done
        self.acks = _Batcher(self._delete)

    def _delete(self, handles: list[str]) -> None:
        entries = [{"Id": str(n), "ReceiptHandle": handle} for n, handle in enumerate(handles)]
        self.client.delete_message_batch(QueueUrl=self.url, Entries=entries)

    def run(self) -> None:
        while (raw := self.work.get()) is not None:
            body = json.loads(raw["Body"])
            notify_started(body["i"], body["sent"])
            self.acks.add(raw["ReceiptHandle"])
            self.room.release()

    def receive(self) -> None:
        while True:
            for _ in range(BATCH):
                self.room.acquire()
            response = self.client.receive_message(
                QueueUrl=self.url, MaxNumberOfMessages=BATCH, WaitTimeSeconds=WAIT_S
            )
            messages = response.get("Messages", [])
            for raw in messages:
                self.work.put(raw)
            for _ in range(BATCH - len(messages)):
                self.room.release()


def run_worker(endpoint_url: str, namespace: str, threads: int, stop: threading.Event) -> dict:
    client = _client(endpoint_url)
    loop = _HandLoop(client, _queue_url(client, namespace), threads)
    pool = [threading.Thread(target=loop.run, daemon=True) for _ in range(threads)]
    for thread in [*pool, threading.Thread(target=loop.receive, daemon=True)]:
        thread.start()
    stop.wait()
    # The receiver may sit in a long poll: leave it; whatever it gets back reappears after its lease.
    for _ in pool:
        loop.work.put(None)
    for thread in pool:
        thread.join()
    loop.acks.close()
    return {}
