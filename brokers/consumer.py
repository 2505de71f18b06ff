"""The consumer side of the SQS broker: a background long poll per queue feeding dramatiq's worker.

The consumer owns no SQS logic of its own beyond receiving: what a received body becomes is decided
in brokers.receiving, dead letters are written by brokers.deadletters, and leases (heartbeats and
batched deletes) are kept by brokers.leases. It is handed those collaborators by the broker.

It never stalls on one message: anything that goes wrong while it takes in a received message
sends that message to the dead-letter queue with the reason, and the poller goes on (but for a
payload S3 could not hand over: that message stays in SQS for a later try). Should the
poller itself stop, the next call for a message raises, so the worker restarts the consumer.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, cast

from dramatiq.broker import Consumer, MessageProxy
from dramatiq.common import current_millis
from dramatiq.errors import ConnectionClosed
from dramatiq.message import Message

from brokers.client import SQSClient
from brokers.deadletters import DeadLetters, Reason, failed_body
from brokers.errors import (
    DeadLetteringFailed,
    MalformedMessage,
    PayloadError,
    PayloadMissing,
    PollerDied,
    SQSBrokerError,
)
from brokers.leases import Lease, LeaseKeeper
from brokers.limits import MAX_LONG_POLL_MS, MAX_RECEIVE_MESSAGES, seconds
from brokers.payloads import Payloads, Pointer
from brokers.queues import Queue
from brokers.receiving import DECODE_ERROR, Reject, Resend, Run, decide

logger = logging.getLogger(__name__)

#: Long-poll wait on a FIFO queue while this process still holds messages of it.
FIFO_BUSY_POLL_MS = 1_000


@dataclass(frozen=True)
class ReceiveSettings:
    """How a broker's consumers receive: the lease of each message and the pause between receives."""

    #: The lease a received message starts with, in milliseconds (whole seconds).
    visibility_timeout: int
    #: Longest pause, in milliseconds, after a partly full receive, to batch the next.
    receive_linger: int


class SQSMessage(MessageProxy):
    """A received message: the dramatiq message plus where it came from in SQS."""

    def __init__(
        self,
        message: Message[Any],
        *,
        queue: Queue,
        receipt_handle: str,
        receive_count: int,
        pointer: Pointer | None = None,
    ) -> None:
        super().__init__(message)
        self._queue = queue
        self._receipt_handle = receipt_handle
        self._receive_count = receive_count
        self._pointer = pointer

    @property
    def queue(self) -> Queue:
        """The queue it was received from."""
        return self._queue

    @property
    def receipt_handle(self) -> str:
        return self._receipt_handle

    @property
    def receive_count(self) -> int:
        """How many times SQS has delivered this message (1 the first time)."""
        return self._receive_count

    @property
    def message(self) -> Message[Any]:
        """The dramatiq message itself."""
        return self._message

    @property
    def pointer(self) -> Pointer | None:
        """Where its body is in S3, when it came through S3."""
        return self._pointer

    @property
    def exception(self) -> BaseException | None:
        """What the actor (or the worker) failed with, if anything."""
        return self._exception


class SQSConsumer(Consumer):
    """Iterates over one queue's messages; a daemon thread long-polls SQS ahead of the worker.

    The poller never holds more unacked messages than the worker's prefetch; when only part of a
    receive batch fits, it waits a moment for room for a full one, so receives stay full.
    """

    def __init__(
        self,
        queue: Queue,
        *,
        sqs: SQSClient,
        leases: LeaseKeeper,
        dead_letters: DeadLetters,
        receiving: ReceiveSettings,
        prefetch: int,
        timeout: int,
        payloads: Payloads,
    ) -> None:
        self._queue = queue
        self._sqs = sqs
        self._leases = leases
        self._dead_letters = dead_letters
        self._payloads = payloads
        self._receiving = receiving
        self._prefetch = max(1, prefetch)
        self._timeout_s = timeout / 1000
        self._cond = threading.Condition()
        self._ready: deque[SQSMessage] = deque()
        self._held: list[tuple[int, int, SQSMessage]] = []
        self._seq = itertools.count()
        self._error: BaseException | None = None
        self._closed = threading.Event()
        self._poller = threading.Thread(target=self._poll, name=f"offload-poll-{queue.name}", daemon=True)
        self._poller.start()

    # --- dramatiq's Consumer interface -----------------------------------------------------------
    def __next__(self) -> SQSMessage | None:
        deadline = time.monotonic() + self._timeout_s
        with self._cond:
            while True:
                if self._ready:
                    return self._ready.popleft()
                if self._held and self._held[0][0] <= current_millis():
                    return heapq.heappop(self._held)[2]
                self._raise_if_stopped()
                wait = deadline - time.monotonic()
                if self._held:
                    wait = min(wait, (self._held[0][0] - current_millis()) / 1000)
                if wait <= 0:
                    if time.monotonic() >= deadline:
                        return None
                    continue
                self._cond.wait(wait)

    def _raise_if_stopped(self) -> None:
        """Raise when the poller has stopped while the consumer is open: no message would come."""
        error, self._error = self._error, None
        if isinstance(error, Exception):
            raise error
        if error is not None:
            raise PollerDied(f"The poller of queue {self._queue.name!r} stopped: {error!r}.") from error
        if not self._poller.is_alive() and not self._closed.is_set():
            raise PollerDied(f"The poller of queue {self._queue.name!r} stopped.")

    def ack(self, message: MessageProxy) -> None:
        received = cast(SQSMessage, message)  # the worker hands back what this consumer gave it
        self._leases.ack(received.receipt_handle, on_deleted=self._payloads.deleter(received.pointer))

    def nack(self, message: MessageProxy) -> None:
        received = cast(SQSMessage, message)
        reason = Reason.for_failure(received.message, self._queue, received.exception)
        pointer = received.pointer
        try:
            self._dead_letters.send(
                self._queue,
                # A message that came through S3 stays there: its dead letter is the same pointer.
                body=pointer.body if pointer else failed_body(received.message, self._queue),
                reason=reason,
                message_id=received.message_id,
                attributes=pointer.attributes() if pointer else None,
            )
        except DeadLetteringFailed:
            self._leases.forget(message.receipt_handle)  # SQS delivers it again after its lease
            raise
        self._leases.ack(message.receipt_handle, on_deleted=self._unless_kept(pointer))

    def requeue(self, messages: Iterable[MessageProxy]) -> None:
        # dramatiq requeues only when this consumer is about to close (shutdown, connection error):
        # stop receiving first, so the poller does not fetch the released messages straight back.
        self._closed.set()
        self._leases.release([message.receipt_handle for message in messages])

    def close(self) -> None:
        self._closed.set()
        with self._cond:
            unstarted = [message.receipt_handle for message in self._ready]
            unstarted += [item[2].receipt_handle for item in self._held]
            self._ready.clear()
            self._held.clear()
            self._cond.notify_all()
        self._leases.release(unstarted)
        try:
            self._leases.flush(self._queue.url)
        except ConnectionClosed as e:
            logger.warning("Could not delete acked messages of %r on close: %s", self._queue.name, e)

    # --- the poller ------------------------------------------------------------------------------
    def _poll(self) -> None:
        try:
            self._receive_until_closed()
        except (ConnectionClosed, SQSBrokerError) as e:
            self._fail(e)  # the worker logs it and restarts the consumer
        except BaseException as e:
            logger.exception("Unexpected error receiving from %r.", self._queue.name)
            self._fail(e)

    def _receive_until_closed(self) -> None:
        linger_s = 0.0
        last_return = time.monotonic()
        wanted = min(MAX_RECEIVE_MESSAGES, self._prefetch)
        while not self._closed.is_set():
            room = self._leases.wait_for_room(self._queue.url, limit=self._prefetch, wanted=1, timeout=1.0)
            if room <= 0:
                continue
            if room < wanted:
                # Give finishing tasks a moment to make room for a full batch (fewer requests), but
                # not so long that free worker threads sit idle.
                room = self._leases.wait_for_room(
                    self._queue.url,
                    limit=self._prefetch,
                    wanted=wanted,
                    timeout=self._receiving.receive_linger / 1000,
                )
            if (linger_s and self._closed.wait(linger_s)) or self._closed.is_set():
                return  # closed while waiting: a receive now would only have to be released again
            requested = min(MAX_RECEIVE_MESSAGES, room)
            received = self._receive(requested)
            if self._closed.is_set():
                leases = [self._track(raw) for raw in received]
                self._leases.release(lease.receipt_handle for lease in leases)
                return
            for raw in received:
                self._accept(raw)
            now = time.monotonic()
            linger_s = self._linger(len(received), requested, now - last_return)
            last_return = now

    def _receive(self, requested: int) -> list[dict[str, Any]]:
        wait_ms = MAX_LONG_POLL_MS
        if self._queue.fifo and self._leases.pending(self._queue.url):
            # A FIFO group stays locked until our own messages of it are deleted, and some
            # servers do not notice the unlock during a long poll that began before it.
            wait_ms = FIFO_BUSY_POLL_MS
        response = self._sqs.call(
            "ReceiveMessage",
            QueueUrl=self._queue.url,
            MaxNumberOfMessages=requested,
            WaitTimeSeconds=seconds(wait_ms),
            VisibilityTimeout=seconds(self._receiving.visibility_timeout),
            MessageSystemAttributeNames=["ApproximateReceiveCount"],
        )
        messages: list[dict[str, Any]] = response.get("Messages", [])
        return messages

    def _linger(self, received: int, requested: int, interval_s: float) -> float:
        """How long to wait before the next receive so that it comes back fuller.

        After a partly full receive, messages are trickling in: wait about as long as the rate just
        seen needs to bring a whole batch (the next receive starts from nothing: what this one got
        is already taken), and never longer than receive_linger. A full or an empty receive means no
        wait (a backlog, or an idle queue whose next long poll answers at once).
        """
        if not 0 < received < requested:
            return 0.0
        rate = received / max(interval_s, 0.001)
        return min(self._receiving.receive_linger / 1000, requested / rate)

    def _fail(self, error: BaseException) -> None:
        with self._cond:
            self._error = error
            self._cond.notify_all()

    # --- one received message ------------------------------------------------------------------
    def _track(self, raw: dict[str, Any]) -> Lease:
        return self._leases.track(self._queue.url, raw["ReceiptHandle"], raw["MessageId"])

    def _accept(self, raw: dict[str, Any]) -> None:
        """Take one received message in; whatever goes wrong, it ends in the dead-letter queue
        (but for a payload S3 could not hand over: that message is left for a later try)."""
        lease = self._track(raw)
        pointer = None
        try:
            taken = self._take(raw)
            if taken is None:
                return
            body, pointer = taken
            decision = decide(body, self._queue, now_ms=current_millis())
            if isinstance(decision, Reject):
                logger.error(
                    "Message %r on %r cannot run (%s); moving it to the dead-letter queue.",
                    raw["MessageId"],
                    self._queue.name,
                    decision.error,
                )
                self._reject(raw, Reason.for_rejected(decision, self._queue), pointer)
            elif isinstance(decision, Resend):
                self._hop(raw, decision, pointer)
            else:
                self._leases.rename(lease, decision.message.message_id)
                self._hand_over(raw, decision, pointer)
        except Exception as e:
            logger.exception(
                "Could not take in message %r from %r; moving it to the dead-letter queue.",
                raw["MessageId"],
                self._queue.name,
            )
            reason = Reason("", self._queue.name, type(e).__name__, str(e) or repr(e), attempts=1)
            self._reject(raw, reason, pointer)

    def _take(self, raw: dict[str, Any]) -> tuple[str, Pointer | None] | None:
        """The body to judge (a payload fetched from S3) and its pointer; None when the message was
        dealt with here: dead-lettered (a bad pointer, a missing object) or left for a later try."""
        try:
            return self._payloads.take(raw.get("Body", ""), raw.get("MessageAttributes"))
        except MalformedMessage as e:
            reason = Reason("", self._queue.name, DECODE_ERROR, str(e), attempts=1)
        except PayloadMissing as e:
            reason = Reason("", self._queue.name, type(e).__name__, str(e), attempts=1)
        except (ConnectionClosed, PayloadError) as e:
            logger.warning(
                "Could not read the S3 payload of message %r on %r (it comes back after its lease): %s",
                raw["MessageId"],
                self._queue.name,
                e,
            )
            self._leases.forget(raw["ReceiptHandle"])
            return None
        logger.error(
            "Message %r on %r cannot run (%s); moving it to the dead-letter queue.",
            raw["MessageId"],
            self._queue.name,
            reason.error,
        )
        self._reject(raw, reason, None)
        return None

    def _hand_over(self, raw: dict[str, Any], run: Run, pointer: Pointer | None) -> None:
        proxy = SQSMessage(
            run.message,
            queue=self._queue,
            receipt_handle=raw["ReceiptHandle"],
            receive_count=int(raw.get("Attributes", {}).get("ApproximateReceiveCount", 1)),
            pointer=pointer,
        )
        with self._cond:
            if run.due_at is not None:
                heapq.heappush(self._held, (run.due_at, next(self._seq), proxy))
            else:
                self._ready.append(proxy)
            self._cond.notify_all()

    def _reject(self, raw: dict[str, Any], reason: Reason, pointer: Pointer | None) -> None:
        try:
            self._dead_letters.send(
                self._queue,
                body=raw.get("Body", ""),
                reason=reason,
                message_id=raw["MessageId"],
                attributes=pointer.attributes() if pointer else None,
            )
        except Exception:
            logger.exception(
                "Could not dead-letter message %r (it comes back after its lease).", raw["MessageId"]
            )
            self._leases.forget(raw["ReceiptHandle"])
            return
        self._leases.ack(raw["ReceiptHandle"], on_deleted=self._unless_kept(pointer))

    def _unless_kept(self, pointer: Pointer | None) -> Callable[[], None] | None:
        """Deletes a dead letter's payload once its original is deleted, unless the dead letter keeps it."""
        return None if self._queue.dead_letter_url else self._payloads.deleter(pointer)

    def _hop(self, raw: dict[str, Any], resend: Resend, pointer: Pointer | None) -> None:
        """Send a message that is not yet due around again, for at most SQS's longest delay.

        A message that came through S3 hops as the same pointer: its object is not stored again.
        """
        attributes = {"MessageAttributes": pointer.attributes()} if pointer else {}
        try:
            self._sqs.call(
                "SendMessage",
                QueueUrl=self._queue.url,
                MessageBody=raw["Body"],
                DelaySeconds=seconds(resend.delay_ms),
                **attributes,
            )
        except (ConnectionClosed, SQSBrokerError) as e:
            logger.warning(
                "Could not re-delay message %r (it comes back after its lease): %s",
                resend.message.message_id,
                e,
            )
            self._leases.forget(raw["ReceiptHandle"])
            return
        logger.debug(
            "Message %r is not due yet; delayed it again by %d ms.",
            resend.message.message_id,
            resend.delay_ms,
        )
        self._leases.ack(raw["ReceiptHandle"])
