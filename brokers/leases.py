"""Leases of received messages: heartbeats that keep them hidden, and batched deletes for acks.

Every message a consumer receives is tracked here from the moment it arrives until SQS has deleted
it or it was released. While tracked, a background thread extends its visibility
(ChangeMessageVisibilityBatch) before the lease runs out, so a message that waits in the prefetch
buffer or runs for longer than the lease is never delivered twice. Acked messages stay tracked (and
heartbeated) until their DeleteMessageBatch succeeds.
"""

from __future__ import annotations

import enum
import logging
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from dramatiq.errors import ConnectionClosed

from brokers.client import SQSClient
from brokers.errors import SQSBrokerError
from brokers.limits import MAX_BATCH_ENTRIES, MAX_VISIBILITY_MS, chunks

logger = logging.getLogger(__name__)

#: Back-off before retrying deletes or heartbeats that failed on a connection error.
RETRY_DELAY_S = 1.0


class _State(enum.Enum):
    ACTIVE = "active"  # received, waiting or running
    ACKED = "acked"  # done, its delete not yet confirmed


@dataclass(eq=False)
class Lease:
    queue_url: str
    receipt_handle: str
    message_id: str
    received_at: float
    expires_at: float
    state: _State = _State.ACTIVE
    #: Set when a retry of this message could not be enqueued: its ack must not delete it.
    protected: bool = False
    acked_at: float = field(default=0.0)
    #: Called once SQS has deleted the acked message (its S3 payload goes then, never before), with
    #: the lease keeper's lock held: it must only hand the work on.
    on_deleted: Callable[[], None] | None = None


class LeaseKeeper:
    """Tracks leases for one broker; thread-safe. Durations in milliseconds."""

    def __init__(self, sqs: SQSClient, *, visibility_timeout: int, ack_interval: int) -> None:
        self._sqs = sqs
        self._visibility_ms = visibility_timeout
        self._ack_interval_s = ack_interval / 1000
        self._cond = threading.Condition()
        self._leases: dict[str, Lease] = {}
        self._by_message_id: dict[str, Lease] = {}
        self._active: defaultdict[str, int] = defaultdict(int)
        #: Room taken by receives in flight: messages they may still bring, per queue.
        self._reserved: defaultdict[str, int] = defaultdict(int)
        self._acked: defaultdict[str, list[Lease]] = defaultdict(list)
        self._thread: threading.Thread | None = None
        self._closed = False
        self._retry_after = 0.0

    # --- tracking -------------------------------------------------------------------------------
    def track(self, queue_url: str, receipt_handle: str, message_id: str) -> Lease:
        now = time.monotonic()
        lease = Lease(queue_url, receipt_handle, message_id, now, now + self._visibility_ms / 1000)
        with self._cond:
            self._leases[receipt_handle] = lease
            self._by_message_id[message_id] = lease
            self._active[queue_url] += 1
            self._start()
        return lease

    def rename(self, lease: Lease, message_id: str) -> None:
        """Index a lease by the dramatiq message id once its body is decoded."""
        with self._cond:
            if self._by_message_id.get(lease.message_id) is lease:
                del self._by_message_id[lease.message_id]
            lease.message_id = message_id
            self._by_message_id[message_id] = lease

    def active(self, queue_url: str) -> int:
        """Messages received on the queue and not yet acked, nacked or released."""
        with self._cond:
            return self._active[queue_url]

    def pending(self, queue_url: str) -> int:
        """Messages of the queue still tracked here: active, or acked with the delete not yet done."""
        with self._cond:
            return sum(1 for lease in self._leases.values() if lease.queue_url == queue_url)

    def wait_for_room(self, queue_url: str, *, limit: int, wanted: int, timeout: float) -> int:
        """Wait until at least `wanted` more messages fit under `limit`; return how many fit now.

        Messages that receives in flight may still bring (their reservations) count as held.
        """
        deadline = time.monotonic() + timeout
        with self._cond:
            while (room := self._room(queue_url, limit)) < wanted:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._closed:
                    break
                self._cond.wait(remaining)
            return room

    def reserve(self, queue_url: str, *, limit: int, most: int, least: int = 1) -> int:
        """Take room under `limit` for a receive of up to `most` messages; return how much was taken.

        Several receives of one queue may be in flight at once: each reserves what it asks SQS for,
        so together they never bring more than `limit` unacked messages. Less room than `least`
        takes none (0). `unreserve` gives it back once the receive's messages are tracked.
        """
        with self._cond:
            taken = min(most, self._room(queue_url, limit))
            if taken < max(1, least):
                return 0
            self._reserved[queue_url] += taken
            return taken

    def unreserve(self, queue_url: str, count: int) -> None:
        """Give back a receive's reservation (after tracking what it brought)."""
        with self._cond:
            self._reserved[queue_url] -= count
            self._cond.notify_all()

    def _room(self, queue_url: str, limit: int) -> int:
        # Called with the lock held.
        return limit - self._active[queue_url] - self._reserved[queue_url]

    def protect(self, message_id: str) -> bool:
        """Keep a running message from being deleted by its ack; True when it is tracked here."""
        with self._cond:
            lease = self._by_message_id.get(message_id)
            if lease is None:
                return False
            lease.protected = True
            return True

    # --- endings --------------------------------------------------------------------------------
    def ack(self, receipt_handle: str, *, on_deleted: Callable[[], None] | None = None) -> None:
        """The message is done: delete it in the next batch (or let it reappear if protected).

        `on_deleted` is called once SQS has confirmed the delete, and not at all otherwise.
        """
        with self._cond:
            lease = self._leases.get(receipt_handle)
            if lease is None or lease.state is not _State.ACTIVE:
                return
            self._active[lease.queue_url] -= 1
            if lease.protected:
                logger.warning(
                    "Not deleting message %r: its retry could not be enqueued, so SQS will deliver it "
                    "again when its lease ends.",
                    lease.message_id,
                )
                self._drop(lease)
            else:
                lease.state = _State.ACKED
                lease.acked_at = time.monotonic()
                lease.on_deleted = on_deleted
                self._acked[lease.queue_url].append(lease)
            self._cond.notify_all()

    def forget(self, receipt_handle: str) -> None:
        """Stop heartbeating a message without deleting it: SQS delivers it again after its lease."""
        with self._cond:
            lease = self._leases.get(receipt_handle)
            if lease is not None:
                if lease.state is _State.ACTIVE:
                    self._active[lease.queue_url] -= 1
                self._drop(lease)
                self._cond.notify_all()

    def release(self, receipt_handles: Iterable[str]) -> None:
        """Make messages visible again at once (visibility 0), for requeue and shutdown."""
        by_queue: defaultdict[str, list[Lease]] = defaultdict(list)
        with self._cond:
            for receipt_handle in receipt_handles:
                lease = self._leases.get(receipt_handle)
                if lease is None or lease.state is not _State.ACTIVE:
                    continue
                self._active[lease.queue_url] -= 1
                self._drop(lease)
                by_queue[lease.queue_url].append(lease)
            self._cond.notify_all()
        for queue_url, leases in by_queue.items():
            for chunk in chunks(leases):
                entries = [
                    {"Id": str(i), "ReceiptHandle": lease.receipt_handle, "VisibilityTimeout": 0}
                    for i, lease in enumerate(chunk)
                ]
                try:
                    response = self._sqs.call(
                        "ChangeMessageVisibilityBatch", QueueUrl=queue_url, Entries=entries
                    )
                except (ConnectionClosed, SQSBrokerError) as e:
                    logger.warning(
                        "Could not release %d messages (they reappear when their lease ends): %s",
                        len(chunk),
                        e,
                    )
                    continue
                for failure in response.get("Failed", []):
                    logger.info(
                        "Could not release message %r: %s.", chunk[int(failure["Id"])].message_id, failure
                    )

    def flush(self, queue_url: str | None = None) -> None:
        """Delete every acked message now (of one queue, or of all)."""
        with self._cond:
            urls = [queue_url] if queue_url else list(self._acked)
        for url in urls:
            self._delete(url, everything=True)

    def forget_queue(self, queue_url: str) -> None:
        """Drop every lease of a queue (after a purge: SQS no longer holds those messages)."""
        with self._cond:
            for lease in [lease for lease in self._leases.values() if lease.queue_url == queue_url]:
                if lease.state is _State.ACTIVE:
                    self._active[queue_url] -= 1
                self._drop(lease)
            self._cond.notify_all()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=10)
        try:
            self.flush()
        except (ConnectionClosed, SQSBrokerError) as e:
            with self._cond:
                left = sum(len(acked) for acked in self._acked.values())
            logger.warning(
                "Could not delete %d acked messages on close; SQS will deliver them again: %s", left, e
            )

    # --- internals ------------------------------------------------------------------------------
    def _drop(self, lease: Lease) -> None:
        self._leases.pop(lease.receipt_handle, None)
        if self._by_message_id.get(lease.message_id) is lease:
            del self._by_message_id[lease.message_id]
        acked = self._acked.get(lease.queue_url)
        if acked and lease in acked:
            acked.remove(lease)

    def _start(self) -> None:
        if self._thread is None and not self._closed:
            self._thread = threading.Thread(target=self._run, name="offload-leases", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while True:
            with self._cond:
                if not self._closed:
                    self._cond.wait(self._next_wake())
                if self._closed:
                    return
            try:
                now = time.monotonic()
                if now >= self._retry_after:
                    for queue_url in self._due_deletes(now):
                        self._delete(queue_url, everything=False)
                    self._heartbeat(time.monotonic())
            except ConnectionClosed as e:
                logger.warning(
                    "SQS unreachable from the lease keeper; retrying in %.1f s: %s", RETRY_DELAY_S, e
                )
                self._retry_after = time.monotonic() + RETRY_DELAY_S
            except Exception:
                logger.exception("Unexpected error in the lease keeper; retrying in %.1f s.", RETRY_DELAY_S)
                self._retry_after = time.monotonic() + RETRY_DELAY_S

    def _next_wake(self) -> float:
        now = time.monotonic()
        wake = now + self._visibility_ms / 2000
        for acked in self._acked.values():
            if len(acked) >= MAX_BATCH_ENTRIES:
                return 0
            if acked:
                wake = min(wake, acked[0].acked_at + self._ack_interval_s)
        half = self._visibility_ms / 2000
        for lease in self._leases.values():
            wake = min(wake, lease.expires_at - half)
        return max(0.0, wake - now, self._retry_after - now)

    def _due_deletes(self, now: float) -> list[str]:
        with self._cond:
            return [
                url
                for url, acked in self._acked.items()
                if acked
                and (len(acked) >= MAX_BATCH_ENTRIES or now - acked[0].acked_at >= self._ack_interval_s)
            ]

    def _delete(self, queue_url: str, *, everything: bool) -> None:
        while True:
            with self._cond:
                acked = self._acked.get(queue_url) or []
                if not acked or (
                    not everything and len(acked) < MAX_BATCH_ENTRIES and not self._stale(acked)
                ):
                    return
                chunk = acked[:MAX_BATCH_ENTRIES]
            entries = [{"Id": str(i), "ReceiptHandle": lease.receipt_handle} for i, lease in enumerate(chunk)]
            response = self._sqs.call("DeleteMessageBatch", QueueUrl=queue_url, Entries=entries)
            failed = {int(failure["Id"]): failure for failure in response.get("Failed", [])}
            with self._cond:
                for i, lease in enumerate(chunk):
                    failure = failed.get(i)
                    if failure is not None and not failure.get("SenderFault", False):
                        continue  # SQS's side: stays acked and is retried in the next batch
                    if failure is not None:
                        logger.warning(
                            "SQS refused to delete message %r (%s: %s); it may be delivered again.",
                            lease.message_id,
                            failure.get("Code"),
                            failure.get("Message"),
                        )
                    elif lease.on_deleted is not None:  # only a confirmed delete: a refused one may come back
                        lease.on_deleted()
                    self._drop(lease)
                self._cond.notify_all()
            if failed:
                return  # what SQS failed on its side waits for the next round

    def _stale(self, acked: list[Lease]) -> bool:
        return time.monotonic() - acked[0].acked_at >= self._ack_interval_s

    def _heartbeat(self, now: float) -> None:
        half = self._visibility_ms / 2000
        by_queue: defaultdict[str, list[Lease]] = defaultdict(list)
        with self._cond:
            for lease in self._leases.values():
                if lease.expires_at - now <= half:
                    by_queue[lease.queue_url].append(lease)
        for queue_url, leases in by_queue.items():
            for chunk in chunks(leases):
                extensions = self._extensions(chunk, now)
                if not extensions:
                    continue
                entries = [
                    {"Id": str(i), "ReceiptHandle": chunk[i].receipt_handle, "VisibilityTimeout": extend_s}
                    for i, extend_s in extensions.items()
                ]
                response = self._sqs.call("ChangeMessageVisibilityBatch", QueueUrl=queue_url, Entries=entries)
                failed = {int(failure["Id"]): failure for failure in response.get("Failed", [])}
                with self._cond:
                    for i, extend_s in extensions.items():
                        self._extended(chunk[i], now + extend_s, failed.get(i))

    def _extensions(self, chunk: list[Lease], now: float) -> dict[int, int]:
        """How many seconds to extend each lease of a chunk by, keyed by its place in the chunk.

        A lease that has reached SQS's 12 hours is let go instead: SQS delivers it again.
        """
        extensions = {}
        for i, lease in enumerate(chunk):
            held_ms = (now - lease.received_at) * 1000
            extend_ms = min(self._visibility_ms, MAX_VISIBILITY_MS - held_ms)
            if extend_ms < 1000:
                logger.warning(
                    "Message %r has been held for 12 hours, the most SQS allows; it will be delivered again.",
                    lease.message_id,
                )
                self.forget(lease.receipt_handle)
                continue
            extensions[i] = int(extend_ms // 1000)
        return extensions

    def _extended(self, lease: Lease, expires_at: float, failure: dict[str, Any] | None) -> None:
        # Called with the lock held, once SQS has answered a heartbeat for this lease.
        if failure is None:
            lease.expires_at = expires_at
        elif failure.get("SenderFault", False):
            logger.warning(
                "Lost the lease of message %r (%s); it may be delivered again.",
                lease.message_id,
                failure.get("Code"),
            )
            if lease.state is _State.ACTIVE:
                self._active[lease.queue_url] -= 1
            self._drop(lease)
