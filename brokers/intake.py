"""Taking in one received message: it runs, goes around again until due, or is dead-lettered.

Whatever goes wrong while a message is taken in, it ends in the dead-letter queue with the reason
(but for a payload S3 could not hand over: that message stays in SQS for a later try), so one bad
message never stops its queue. A message the worker nacks is dead-lettered here too.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from dramatiq.broker import MessageProxy
from dramatiq.common import current_millis
from dramatiq.errors import ConnectionClosed
from dramatiq.message import Message

from brokers.client import SQSClient
from brokers.deadletters import DeadLetters, Reason, failed_body
from brokers.errors import DeadLetteringFailed, MalformedMessage, PayloadError, PayloadMissing, SQSBrokerError
from brokers.leases import LeaseKeeper
from brokers.limits import seconds
from brokers.payloads import Payloads, Pointer
from brokers.queues import Queue
from brokers.receiving import DECODE_ERROR, Reject, Resend, Run, decide

logger = logging.getLogger(__name__)


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


class Intake:
    """What happens to each message one queue's consumer receives, and to each one the worker nacks.

    `deliver` gets every message that is to run, with the time (epoch ms) it is due, or None.
    """

    def __init__(
        self,
        queue: Queue,
        *,
        sqs: SQSClient,
        leases: LeaseKeeper,
        dead_letters: DeadLetters,
        payloads: Payloads,
        deliver: Callable[[SQSMessage, int | None], None],
    ) -> None:
        self._queue = queue
        self._sqs = sqs
        self._leases = leases
        self._dead_letters = dead_letters
        self._payloads = payloads
        self._deliver = deliver

    def ack(self, received: SQSMessage) -> None:
        """The message ran: delete it (batched), and its S3 payload after it."""
        self._leases.ack(received.receipt_handle, on_deleted=self._payloads.deleter(received.pointer))

    def nack(self, received: SQSMessage) -> None:
        """The message failed for good: dead-letter it with the reason, then delete it.

        Raises DeadLetteringFailed when the dead letter could not be sent; SQS then delivers the
        message again after its lease.
        """
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
            self._leases.forget(received.receipt_handle)
            raise
        self._leases.ack(received.receipt_handle, on_deleted=self._unless_kept(pointer))

    def accept(self, raw: dict[str, Any]) -> None:
        """Take one received message in; whatever goes wrong, it ends in the dead-letter queue
        (but for a payload S3 could not hand over: that message is left for a later try)."""
        lease = self._leases.track(self._queue.url, raw["ReceiptHandle"], raw["MessageId"])
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
        self._deliver(
            SQSMessage(
                run.message,
                queue=self._queue,
                receipt_handle=raw["ReceiptHandle"],
                receive_count=int(raw.get("Attributes", {}).get("ApproximateReceiveCount", 1)),
                pointer=pointer,
            ),
            run.due_at,
        )

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
