"""The consumer side of the SQS broker: a background long poll per queue feeding dramatiq's worker.

The consumer owns no SQS logic of its own beyond receiving: what becomes of each received message
is brokers.intake's (run, send around again, or dead-letter: one bad message never stops the
queue), and leases (heartbeats, batched deletes, the prefetch's room) are kept by brokers.leases.
It is handed those collaborators by the broker. Should a poller itself stop, the next call for a
message raises, so the worker restarts the consumer.

How it receives, and what each rule costs:

- **One long poll while the queue is quiet.** A lead poller keeps one ReceiveMessage of 20 s open,
  so an idle queue costs 3 requests a minute and a message that arrives is returned at once.
- **Pipelined receives for a backlog.** A receive that comes back full means more is waiting; one
  request at a time would then bound the drain by its round trip. While receives keep coming back
  full, more pollers each keep a receive in flight, with the rest of the prefetch shared out a batch
  at a time (prefetch 16: receives of 10 and 6). Every receive reserves the room it asks for, so
  together they never hold more unacked messages than the prefetch. The first receive that comes
  back short ends the backlog: the extra pollers' waits are short (1 s), so within a second only
  the lead's long poll is left. A share under 5 messages gets no poller of its own (it would cost
  more requests per message than its overlap gains), nor does a FIFO queue.
- **The linger only where it buys fuller receives.** After a receive that came back partly full, the
  lead waits before its next receive for as long as the arrival rate it just saw needs to bring a
  whole batch, capped by `receive_linger` (100 ms). It waits only at 20 messages a second or more,
  where the wait at least doubles the next receive (2 messages in 100 ms); below that, every
  message is delivered at once by the open long poll, at most 20 receives a second. A full receive
  (a backlog) or an empty one never lingers, and a receive that came back full after a linger is
  not taken for a backlog: steady traffic is not split between pollers.
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

from brokers.client import SQSClient
from brokers.deadletters import DeadLetters
from brokers.errors import PollerDied, SQSBrokerError
from brokers.intake import Intake, SQSMessage
from brokers.leases import LeaseKeeper
from brokers.limits import MAX_LONG_POLL_MS, MAX_RECEIVE_MESSAGES, seconds
from brokers.payloads import Payloads
from brokers.queues import Queue

logger = logging.getLogger(__name__)

#: Long-poll wait on a FIFO queue while this process still holds messages of it.
FIFO_BUSY_POLL_MS = 1_000
#: Most ReceiveMessage requests one consumer keeps in flight at once, while its queue has a backlog.
MAX_RECEIVES_IN_FLIGHT = 4
#: The smallest share of the prefetch that gets a pipelined receive of its own.
MIN_PIPELINED_RECEIVE = 5
#: Wait of a pipelined receive: short, so that once the backlog is gone only the lead's long poll
#: is left within this long (idle cost stays at 3 requests a minute).
PIPELINED_POLL_MS = 1_000
#: The lead lingers only while messages arrive at least this fast (messages a second): 2 within the
#: default 100 ms linger, so that the linger at least doubles the next receive. Slower traffic is
#: delivered at once by the open long poll, at no more than this many receives a second.
MIN_LINGER_RATE = 20.0


@dataclass(frozen=True)
class ReceiveSettings:
    """How a broker's consumers receive: the lease of each message and the pause between receives."""

    #: The lease a received message starts with, in milliseconds (whole seconds).
    visibility_timeout: int
    #: Longest pause, in milliseconds, after a partly full receive, to batch the next.
    receive_linger: int


def receive_shares(prefetch: int, *, fifo: bool = False) -> list[int]:
    """The most each poller of a consumer asks one receive for: the lead first, then the pipelined.

    The lead takes up to a full batch; the rest of the prefetch is shared out a batch at a time,
    as long as a share is worth a request of its own (MIN_PIPELINED_RECEIVE).
    """
    prefetch = max(1, prefetch)
    shares = [min(MAX_RECEIVE_MESSAGES, prefetch)]
    rest = prefetch - shares[0]
    while not fifo and rest >= MIN_PIPELINED_RECEIVE and len(shares) < MAX_RECEIVES_IN_FLIGHT:
        shares.append(min(MAX_RECEIVE_MESSAGES, rest))
        rest -= shares[-1]
    return shares


class SQSConsumer(Consumer):
    """Iterates over one queue's messages; daemon threads long-poll SQS ahead of the worker.

    The pollers never hold more unacked messages than the worker's prefetch; when only part of a
    receive batch fits, the lead waits a moment for room for a full one, so receives stay full.
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
        self._receiving = receiving
        self._intake = Intake(
            queue, sqs=sqs, leases=leases, dead_letters=dead_letters, payloads=payloads, deliver=self._deliver
        )
        self._prefetch = max(1, prefetch)
        self._timeout_s = timeout / 1000
        self._cond = threading.Condition()
        self._ready: deque[SQSMessage] = deque()
        self._held: list[tuple[int, int, SQSMessage]] = []
        self._seq = itertools.count()
        self._error: BaseException | None = None
        self._closed = threading.Event()
        #: Set while receives come back full: the pipelined pollers receive only then.
        self._backlog = threading.Event()
        shares = receive_shares(self._prefetch, fifo=queue.fifo)
        self._pollers = [
            threading.Thread(
                target=self._poll, args=(self._lead, shares[0]), name=f"offload-poll-{queue.name}"
            )
        ]
        self._pollers += [
            threading.Thread(
                target=self._poll, args=(self._pipeline, share), name=f"offload-poll-{queue.name}-{n}"
            )
            for n, share in enumerate(shares[1:], 2)
        ]
        for poller in self._pollers:
            poller.daemon = True
            poller.start()

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
        if not all(poller.is_alive() for poller in self._pollers) and not self._closed.is_set():
            raise PollerDied(f"A poller of queue {self._queue.name!r} stopped.")

    def ack(self, message: MessageProxy) -> None:
        self._intake.ack(cast(SQSMessage, message))  # the worker hands back what this consumer gave it

    def nack(self, message: MessageProxy) -> None:
        self._intake.nack(cast(SQSMessage, message))

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

    # --- the pollers ------------------------------------------------------------------------------
    def _poll(self, loop: Callable[[int], None], share: int) -> None:
        try:
            loop(share)
        except (ConnectionClosed, SQSBrokerError) as e:
            self._fail(e)  # the worker logs it and restarts the consumer
        except BaseException as e:
            logger.exception("Unexpected error receiving from %r.", self._queue.name)
            self._fail(e)

    def _lead(self, wanted: int) -> None:
        """Keep one receive going: a long poll while quiet, lingering only where it fills receives."""
        linger_s = 0.0
        last_return = time.monotonic()
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
            outcome = self._receive_into_room(most=min(wanted, room), least=1, wait_ms=self._lead_wait_ms())
            if outcome is None:
                return
            requested, received = outcome
            if not requested:
                continue
            # A receive the lead lingered for comes back full because of the linger, not a backlog.
            self._note_backlog(requested, received, lingered=linger_s > 0)
            now = time.monotonic()
            linger_s = self._linger(received, requested, now - last_return)
            last_return = now

    def _pipeline(self, share: int) -> None:
        """While the queue has a backlog, keep one more receive of `share` messages in flight."""
        while not self._closed.is_set():
            if not self._backlog.wait(1.0):
                continue
            room = self._leases.wait_for_room(
                self._queue.url, limit=self._prefetch, wanted=share, timeout=1.0
            )
            if room < share or not self._backlog.is_set():
                continue
            outcome = self._receive_into_room(most=share, least=share, wait_ms=PIPELINED_POLL_MS)
            if outcome is None:
                return
            requested, received = outcome
            if requested:
                self._note_backlog(requested, received)

    def _note_backlog(self, requested: int, received: int, *, lingered: bool = False) -> None:
        # A full receive means more is waiting (unless a linger filled it); a short one that the
        # queue has run dry.
        if received < requested:
            self._backlog.clear()
        elif not lingered:
            self._backlog.set()

    def _lead_wait_ms(self) -> int:
        if self._queue.fifo and self._leases.pending(self._queue.url):
            # A FIFO group stays locked until our own messages of it are deleted, and some
            # servers do not notice the unlock during a long poll that began before it.
            return FIFO_BUSY_POLL_MS
        return MAX_LONG_POLL_MS

    def _receive_into_room(self, *, most: int, least: int, wait_ms: int) -> tuple[int, int] | None:
        """Reserve room, receive into it and take the messages in: (asked for, received).

        (0, 0) when the room was taken meanwhile; None when the consumer closed during the receive
        (what it brought is released at once).
        """
        requested = self._leases.reserve(self._queue.url, limit=self._prefetch, most=most, least=least)
        if not requested:
            return 0, 0
        try:
            received = self._receive(requested, wait_ms)
            if self._closed.is_set():
                for raw in received:
                    self._leases.track(self._queue.url, raw["ReceiptHandle"], raw["MessageId"])
                self._leases.release(raw["ReceiptHandle"] for raw in received)
                return None
            for raw in received:
                self._intake.accept(raw)
        finally:
            # Only now: until its messages are tracked, the reservation is what counts them.
            self._leases.unreserve(self._queue.url, requested)
        return requested, len(received)

    def _receive(self, requested: int, wait_ms: int) -> list[dict[str, Any]]:
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
        """How long the lead waits before its next receive so that it comes back fuller.

        After a partly full receive, messages are trickling in at about the rate just seen: wait
        about as long as that rate needs to bring a whole batch (the next receive starts from
        nothing: what this one got is already taken), never longer than receive_linger, and not at
        all below MIN_LINGER_RATE, where the wait would cost every message time and save few
        requests. A full or an empty receive means no wait (a backlog, or an idle queue whose next
        long poll answers as soon as a message comes).
        """
        if not 0 < received < requested:
            return 0.0
        rate = received / max(interval_s, 0.001)
        if rate < MIN_LINGER_RATE:
            return 0.0
        return min(self._receiving.receive_linger / 1000, requested / rate)

    def _deliver(self, message: SQSMessage, due_at: int | None) -> None:
        with self._cond:
            if due_at is not None:
                heapq.heappush(self._held, (due_at, next(self._seq), message))
            else:
                self._ready.append(message)
            self._cond.notify_all()

    def _fail(self, error: BaseException) -> None:
        with self._cond:
            self._error = error
            self._cond.notify_all()

    # --- one received message ------------------------------------------------------------------
