"""The consumer side of the SQS broker: a background long poll per queue feeding dramatiq's worker."""

from __future__ import annotations

import heapq
import itertools
import logging
import math
import threading
import time
from collections import deque
from typing import TYPE_CHECKING, Any

from dramatiq.broker import Consumer, MessageProxy
from dramatiq.common import current_millis
from dramatiq.errors import ConnectionClosed, DecodeError
from dramatiq.message import Message

from brokers.client import LONG_POLL_S
from brokers.errors import SQSBrokerError

if TYPE_CHECKING:
    from brokers.sqs import SQSBroker, _Queue

logger = logging.getLogger(__name__)

#: Most messages one ReceiveMessage returns (sqs-api ReceiveMessage).
MAX_RECEIVE = 10
#: A delayed message that arrives this close to its ETA (clock skew) is held here until due rather
#: than sent around again.
MAX_HOLD_MS = 2_000
#: Long-poll wait on a FIFO queue while this process still holds messages of it, in seconds.
FIFO_BUSY_POLL_S = 1
#: SQS rejects DelaySeconds above this (sqs-message-timers).
MAX_DELAY_S = 15 * 60


class _SQSMessage(MessageProxy):
    """A received message: the dramatiq message plus where it came from in SQS."""

    def __init__(self, message: Message, *, queue: _Queue, receipt_handle: str, receive_count: int) -> None:
        super().__init__(message)
        self._queue = queue
        self._receipt_handle = receipt_handle
        self._receive_count = receive_count

    @property
    def receipt_handle(self) -> str:
        return self._receipt_handle

    @property
    def receive_count(self) -> int:
        """How many times SQS has delivered this message (1 the first time)."""
        return self._receive_count


class _SQSConsumer(Consumer):
    """Iterates over one queue's messages; a daemon thread long-polls SQS ahead of the worker.

    The poller never holds more unacked messages than the worker's prefetch; when only part of a
    receive batch fits, it waits a moment for room for a full one, so receives stay full.
    """

    def __init__(self, broker: SQSBroker, queue: _Queue, *, prefetch: int, timeout: int) -> None:
        self._broker = broker
        self._queue = queue
        self._leases = broker._leases
        self._prefetch = max(1, prefetch)
        self._timeout_s = timeout / 1000
        self._cond = threading.Condition()
        self._ready: deque[_SQSMessage] = deque()
        self._held: list[tuple[int, int, _SQSMessage]] = []
        self._seq = itertools.count()
        self._error: BaseException | None = None
        self._closed = threading.Event()
        self._poller = threading.Thread(target=self._poll, name=f"offload-poll-{queue.name}", daemon=True)
        self._poller.start()

    # --- dramatiq's Consumer interface -----------------------------------------------------------
    def __next__(self) -> _SQSMessage | None:
        deadline = time.monotonic() + self._timeout_s
        with self._cond:
            while True:
                if self._ready:
                    return self._ready.popleft()
                if self._held and self._held[0][0] <= current_millis():
                    return heapq.heappop(self._held)[2]
                if self._error is not None:
                    error, self._error = self._error, None
                    raise error
                wait = deadline - time.monotonic()
                if self._held:
                    wait = min(wait, (self._held[0][0] - current_millis()) / 1000)
                if wait <= 0:
                    if time.monotonic() >= deadline:
                        return None
                    continue
                self._cond.wait(wait)

    def ack(self, message: MessageProxy) -> None:
        self._leases.ack(message.receipt_handle)

    def nack(self, message: MessageProxy) -> None:
        self._broker._dead_letter(message)
        self._leases.ack(message.receipt_handle)

    def requeue(self, messages: Any) -> None:
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
        linger_s = 0.0
        last_return = time.monotonic()
        wanted = min(MAX_RECEIVE, self._prefetch)
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
                    timeout=self._broker.receive_linger / 1000,
                )
            if (linger_s and self._closed.wait(linger_s)) or self._closed.is_set():
                break  # closed while waiting: a receive now would only have to be released again
            requested = min(MAX_RECEIVE, room)
            wait_s = LONG_POLL_S
            if self._queue.fifo and self._leases.pending(self._queue.url):
                # A FIFO group stays locked until our own messages of it are deleted, and some
                # servers do not notice the unlock during a long poll that began before it.
                wait_s = FIFO_BUSY_POLL_S
            try:
                response = self._broker._sqs.call(
                    "ReceiveMessage",
                    QueueUrl=self._queue.url,
                    MaxNumberOfMessages=requested,
                    WaitTimeSeconds=wait_s,
                    VisibilityTimeout=self._broker.visibility_timeout // 1000,
                    MessageSystemAttributeNames=["ApproximateReceiveCount"],
                )
            except (ConnectionClosed, SQSBrokerError) as e:
                self._fail(e)
                return
            except Exception as e:
                logger.exception("Unexpected error receiving from %r.", self._queue.name)
                self._fail(e)
                return
            received = response.get("Messages", [])
            if self._closed.is_set():
                leases = [
                    self._leases.track(self._queue.url, raw["ReceiptHandle"], raw["MessageId"])
                    for raw in received
                ]
                self._leases.release(lease.receipt_handle for lease in leases)
                return
            for raw in received:
                self._accept(raw)
            now = time.monotonic()
            linger_s = self._linger(len(received), requested, now - last_return)
            last_return = now

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
        return min(self._broker.receive_linger / 1000, requested / rate)

    def _fail(self, error: BaseException) -> None:
        with self._cond:
            self._error = error
            self._cond.notify_all()

    def _accept(self, raw: dict[str, Any]) -> None:
        receipt_handle = raw["ReceiptHandle"]
        lease = self._leases.track(self._queue.url, receipt_handle, raw["MessageId"])
        body = raw.get("Body", "")
        try:
            message = Message.decode(body.encode("utf-8"))
        except DecodeError as e:
            self._broker._dead_letter_undecodable(self._queue, raw, e)
            return
        self._leases.rename(lease, message.message_id)

        eta = message.options.get("eta")
        if isinstance(eta, int | float):
            remaining = eta - current_millis()
            if remaining > MAX_HOLD_MS:
                self._hop(raw, message, remaining)
                return
            message = _without_eta(message)
        elif "eta" in message.options:
            message = _without_eta(message)
        else:
            remaining = 0

        proxy = _SQSMessage(
            message,
            queue=self._queue,
            receipt_handle=receipt_handle,
            receive_count=int(raw.get("Attributes", {}).get("ApproximateReceiveCount", 1)),
        )
        with self._cond:
            if remaining > 0:
                heapq.heappush(self._held, (eta, next(self._seq), proxy))
            else:
                self._ready.append(proxy)
            self._cond.notify_all()

    def _hop(self, raw: dict[str, Any], message: Message, remaining_ms: float) -> None:
        """Send a message that is not yet due around again, for at most SQS's longest delay."""
        delay_s = min(MAX_DELAY_S, math.ceil(remaining_ms / 1000))
        try:
            self._broker._sqs.call(
                "SendMessage", QueueUrl=self._queue.url, MessageBody=raw["Body"], DelaySeconds=delay_s
            )
        except (ConnectionClosed, SQSBrokerError) as e:
            logger.warning(
                "Could not re-delay message %r (it comes back after its lease): %s", message.message_id, e
            )
            self._leases.forget(raw["ReceiptHandle"])
            return
        logger.debug(
            "Message %r is due in %d ms; delayed it again by %d s.", message.message_id, remaining_ms, delay_s
        )
        self._leases.ack(raw["ReceiptHandle"])


def _without_eta(message: Message) -> Message:
    options = {key: value for key, value in message.options.items() if key != "eta"}
    return Message(**{**message.asdict(), "options": options})
