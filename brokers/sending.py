"""Sending messages: how a dramatiq message becomes a SendMessage entry, whole batches for
`batch()`, and concurrent sends coalesced.

Coalescing is group commit: while one request for a queue is in flight, other threads' messages for
that queue wait and then go out together in the next SendMessageBatch. A thread sending alone is
never held back, and every caller still returns only once SQS has accepted its own message (or
raises), so nothing is acknowledged to the application before SQS has it. A sender interrupted
while it carries other threads' messages (a time limit, a shutdown) hands them back to be sent by
the next of those threads, so no caller is left waiting for a request that never completes.

A message above its queue's payload threshold is stored in S3 first, by its own caller and outside
the coalescing, so a failed upload fails that message alone (in `send_all`, that entry alone); the
object is deleted again when SQS refuses the pointer, and kept when SQS may have it (a connection
error mid-request).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

from dramatiq.common import current_millis, q_name
from dramatiq.errors import ConnectionClosed
from dramatiq.message import Message

from brokers.client import SQSClient
from brokers.errors import (
    FailedEntry,
    FifoDelayNotSupported,
    MessageTooLarge,
    PayloadError,
    QueueDoesNotExist,
    SQSBrokerError,
    SQSRequestFailed,
)
from brokers.limits import MAX_DELAY_MS, chunks, seconds
from brokers.payloads import Payloads, Pointer
from brokers.queues import Queue

logger = logging.getLogger(__name__)

#: Message group of FIFO messages that name none (option "message_group_id").
DEFAULT_MESSAGE_GROUP = "default"
#: Attempts for batch entries that SQS failed on its own side (SenderFault false). Connection errors
#: are not retried here: botocore's standard retry mode already did.
BATCH_ATTEMPTS = 4
#: How FailedEntry names an entry whose service (SQS or S3) could not be reached.
UNREACHABLE = "ConnectionClosed"


@dataclass(eq=False)
class Pending:
    """A message ready to send: its queue, its SendMessage parameters and their size in bytes."""

    queue: Queue
    entry: dict[str, Any]
    size: int
    message: Message[Any]
    delay: int | None
    #: The encoded message, while it waits to be stored in S3 (it is above the queue's threshold).
    payload: bytes | None = None
    #: Where it was stored in S3: the entry then carries this pointer.
    pointer: Pointer | None = None


def prepare(
    queue: Queue,
    message: Message[Any],
    delay: int | None,
    *,
    group_id: str,
    offload_above: int | None = None,
) -> Pending:
    """The SendMessage parameters of a message, checked against what its queue accepts.

    A delay carries an ETA in the message options as well as DelaySeconds, so a delay longer than
    SQS's 15 minutes is honoured by the consumer. `group_id` is the message group on a FIFO queue.
    A message larger than `offload_above` bytes (None: no S3) is marked to go through S3 when sent.
    Raises FifoDelayNotSupported or MessageTooLarge.
    """
    if q_name(message.queue_name) != message.queue_name:
        message = message.copy(queue_name=q_name(message.queue_name))
    delay = max(0, int(delay)) if delay else None
    entry: dict[str, Any] = {}
    if queue.fifo:
        retries = message.options.get("retries", 0)
        if delay and not retries:
            raise FifoDelayNotSupported(
                f"Queue {queue.name!r} is a FIFO queue, and SQS FIFO queues do not delay single "
                f"messages: send message {message.message_id!r} without a delay."
            )
        if delay:
            # A retry on a FIFO queue goes back at once, keeping its place within the group.
            logger.info(
                "FIFO queue %r cannot delay retries; retrying %r now.", queue.name, message.message_id
            )
            delay = None
        entry["MessageGroupId"] = group_id
        # A retry is a new message for deduplication, or SQS would drop it as a repeat.
        entry["MessageDeduplicationId"] = message.message_id + (f"-retry{retries}" if retries else "")
    elif delay:
        message = message.copy(options={"eta": current_millis() + delay})
        # Round up: a message must never run before its delay is over.
        entry["DelaySeconds"] = seconds(min(MAX_DELAY_MS, delay))
    body = message.encode()
    if offload_above is not None and len(body) > offload_above:
        return Pending(queue, entry, 0, message, delay, payload=body)
    if len(body) > queue.max_size:
        raise MessageTooLarge(
            f"Message {message.message_id!r} for queue {queue.name!r} is {len(body):,} bytes; the "
            f"queue accepts at most {queue.max_size:,} bytes. Give the broker a payload bucket "
            "(payload_bucket, SQS_PAYLOAD_BUCKET) to send larger messages through S3."
        )
    entry["MessageBody"] = body.decode("utf-8")
    return Pending(queue, entry, len(body), message, delay)


def entry_size(entry: dict[str, Any]) -> int:
    """The bytes SQS counts for an entry: its body, and each attribute's name, type and value."""
    size = len(entry["MessageBody"].encode("utf-8"))
    for name, attribute in entry.get("MessageAttributes", {}).items():
        value = attribute.get("StringValue") or attribute.get("BinaryValue") or ""
        size += len(name.encode("utf-8")) + len(attribute["DataType"].encode("utf-8"))
        size += len(value) if isinstance(value, bytes) else len(value.encode("utf-8"))
    return size


@dataclass(eq=False)
class _Slot:
    item: Pending
    done: bool = False
    error: BaseException | None = None


class Sender:
    """Thread-safe; one per broker."""

    def __init__(self, sqs: SQSClient, payloads: Payloads) -> None:
        self._sqs = sqs
        self._payloads = payloads
        self._cond = threading.Condition()
        self._waiting: list[_Slot] = []
        self._busy: set[str] = set()

    def send(self, item: Pending) -> None:
        """Send one message, coalesced with other threads' concurrent sends to the same queue.

        Raises ConnectionClosed, SQSRequestFailed, QueueDoesNotExist or (for a message going
        through S3) PayloadError when this message could not be sent.
        """
        self._store(item)
        try:
            self._send_coalesced(item)
        except SQSBrokerError:
            self._discard(item)  # SQS refused the pointer: nothing points to the object
            raise

    def _send_coalesced(self, item: Pending) -> None:
        slot = _Slot(item)
        url = item.queue.url
        with self._cond:
            self._waiting.append(slot)
            try:
                while not slot.done:
                    if url in self._busy:
                        self._cond.wait()
                        continue
                    self._busy.add(url)
                    slots = self._take(url)
                    self._cond.release()
                    unsent: list[_Slot] = []
                    try:
                        self._deliver(slots)
                    except BaseException:
                        # Interrupted mid-request: whether SQS has the others' messages is unknown,
                        # and sending them again is safe (every actor tolerates a repeat), so they go
                        # back to the front of the line rather than leave their senders waiting.
                        unsent = [other for other in slots if other is not slot and not other.done]
                        raise
                    finally:
                        self._cond.acquire()
                        self._waiting[:0] = unsent
                        self._busy.discard(url)
                        self._cond.notify_all()
            except BaseException:
                if slot in self._waiting:  # the caller gave up waiting: never send it behind its back
                    self._waiting.remove(slot)
                raise
        if slot.error is not None:
            raise slot.error

    def send_all(self, items: list[Pending]) -> tuple[list[Pending], list[FailedEntry]]:
        """Send many messages in as few SendMessageBatch requests as the limits allow."""
        sent: list[Pending] = []
        failed: list[FailedEntry] = []
        by_queue: dict[str, list[Pending]] = {}
        for item in items:
            try:
                self._store(item)
            except (ConnectionClosed, PayloadError) as e:
                code = UNREACHABLE if isinstance(e, ConnectionClosed) else f"S3.{e.code}"
                failed.append(_failed(item, code, str(e)))
                continue
            by_queue.setdefault(item.queue.url, []).append(item)
        for queue_items in by_queue.values():
            for chunk in chunks(queue_items, size=_size):
                done, lost = self._send_chunk(chunk)
                sent += done
                failed += [entry for _, entry in lost]
                for item, entry in lost:
                    if entry.code != UNREACHABLE:
                        self._discard(item)
        return sent, failed

    def _store(self, item: Pending) -> None:
        """Put a message above its threshold in S3, and make its entry the pointer to it."""
        if item.payload is None:
            return
        pointer = self._payloads.store(item.payload)
        item.entry["MessageBody"] = pointer.body
        item.entry["MessageAttributes"] = {**item.entry.get("MessageAttributes", {}), **pointer.attributes()}
        item.size = entry_size(item.entry)
        item.payload, item.pointer = None, pointer
        logger.debug("Stored message %r in S3 as %s.", item.message.message_id, pointer)

    def _discard(self, item: Pending) -> None:
        if item.pointer is not None:
            self._payloads.delete_later(item.pointer)

    def _take(self, url: str) -> list[_Slot]:
        mine = (slot for slot in self._waiting if slot.item.queue.url == url)
        taken = next(chunks(mine, size=lambda slot: slot.item.size), [])
        for slot in taken:
            self._waiting.remove(slot)
        return taken

    def _deliver(self, slots: list[_Slot]) -> None:
        try:
            if len(slots) == 1:
                item = slots[0].item
                self._sqs.call("SendMessage", QueueUrl=item.queue.url, **item.entry)
            else:
                _, lost = self._send_chunk([slot.item for slot in slots])
                errors = {id(item): _error(entry) for item, entry in lost}
                for slot in slots:
                    slot.error = errors.get(id(slot.item))
        except Exception as e:  # handed to every caller of this request; re-raised in each thread
            for slot in slots:
                slot.error = e
        for slot in slots:
            slot.done = True

    def _send_chunk(self, chunk: list[Pending]) -> tuple[list[Pending], list[tuple[Pending, FailedEntry]]]:
        url = chunk[0].queue.url
        remaining = chunk
        sent: list[Pending] = []
        failed: list[tuple[Pending, FailedEntry]] = []
        for attempt in range(1, BATCH_ATTEMPTS + 1):
            entries = [{"Id": str(i), **item.entry} for i, item in enumerate(remaining)]
            try:
                response = self._sqs.call("SendMessageBatch", QueueUrl=url, Entries=entries)
            except ConnectionClosed as e:
                return sent, failed + [(item, _failed(item, UNREACHABLE, str(e))) for item in remaining]
            except (SQSRequestFailed, QueueDoesNotExist) as e:
                code, detail = _refusal(e)
                return sent, failed + [(item, _failed(item, code, detail)) for item in remaining]
            sent += [remaining[int(success["Id"])] for success in response.get("Successful", [])]
            retry = []
            for failure in response.get("Failed", []):
                item = remaining[int(failure["Id"])]
                if failure.get("SenderFault", False) or attempt == BATCH_ATTEMPTS:
                    code, reason = failure.get("Code", "Unknown"), failure.get("Message", "")
                    failed.append((item, _failed(item, code, reason)))
                else:
                    retry.append(item)
            if not retry:
                break
            logger.info(
                "SQS failed %d of %d batch entries on its side; retrying them.", len(retry), len(remaining)
            )
            remaining = retry
            time.sleep(min(2.0, 0.1 * 2**attempt))
        return sent, failed


def _size(item: Pending) -> int:
    return item.size


def _failed(item: Pending, code: str, reason: str) -> FailedEntry:
    return FailedEntry(item.message.message_id, item.queue.name, code, reason)


def _refusal(error: SQSRequestFailed | QueueDoesNotExist) -> tuple[str, str]:
    if isinstance(error, SQSRequestFailed):
        return error.code, error.detail
    return "QueueDoesNotExist", str(error)


def _error(entry: FailedEntry) -> Exception:
    if entry.code == UNREACHABLE:
        return ConnectionClosed(entry.reason)
    if entry.code == "QueueDoesNotExist":
        return QueueDoesNotExist(entry.reason)
    return SQSRequestFailed("SendMessageBatch", entry.code, entry.reason)
