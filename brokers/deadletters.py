"""Dead letters: a message that can never succeed goes to its queue's "-dlq" queue with the reason,
and an operator can send it back once the cause is fixed.

The reason travels as message attributes (`offload.actor`, `offload.queue`, `offload.error_type`,
`offload.error`, `offload.attempts`, `offload.failed_at`), so SQS's own console and any client can
read it without decoding the body; the body is the message as it was, so it can be redriven. A
message that came through S3 is dead-lettered as its pointer, and its object stays while the dead
letter exists; a redriven one goes back as a new message (through S3 again if still large), and the
old object is deleted once its dead letter is.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from dramatiq.common import current_millis
from dramatiq.errors import ConnectionClosed
from dramatiq.message import Message

from brokers.client import SQSClient
from brokers.errors import (
    BatchSendFailed,
    DeadLetteringFailed,
    MalformedMessage,
    PayloadError,
    SQSBrokerError,
)
from brokers.limits import MAX_RECEIVE_MESSAGES, chunks, seconds
from brokers.payloads import Payloads, Pointer
from brokers.queues import Queue
from brokers.receiving import Reject, decode
from brokers.sending import DEFAULT_MESSAGE_GROUP, Pending, Sender

logger = logging.getLogger(__name__)

#: Longest error text kept on a dead letter.
MAX_REASON_CHARS = 1_000
#: Dead letters being redriven stay hidden this long, so one pass never sees one twice.
REDRIVE_VISIBILITY_MS = 60_000
#: Options the Retries middleware keeps per message; a redriven message starts without them.
_RETRY_OPTIONS = {"retries", "traceback", "requeue_timestamp"}


@dataclass(frozen=True)
class Reason:
    """Why a message is a dead letter."""

    actor: str
    queue: str
    error_type: str
    error: str
    attempts: int

    @classmethod
    def for_failure(cls, message: Message[Any], queue: Queue, error: BaseException | None) -> Reason:
        """A message whose actor failed (or that the worker rejected) with its retries used up."""
        return cls(
            actor=message.actor_name,
            queue=queue.name,
            error_type=type(error).__name__ if error is not None else "Failed",
            error=str(error) if error is not None else "The message was rejected.",
            attempts=max(1, int(message.options.get("retries", 0) or 0)),
        )

    @classmethod
    def for_rejected(cls, rejected: Reject, queue: Queue) -> Reason:
        """A received message that could never run (see brokers.receiving)."""
        return cls(rejected.actor, queue.name, rejected.error_type, rejected.error, attempts=1)

    def attributes(self) -> dict[str, Any]:
        """The SQS message attributes that carry this reason."""

        def text(value: str) -> dict[str, str]:
            return {"DataType": "String", "StringValue": value or "-"}

        return {
            "offload.actor": text(self.actor),
            "offload.queue": text(self.queue),
            "offload.error_type": text(self.error_type),
            "offload.error": text(self.error[:MAX_REASON_CHARS]),
            "offload.attempts": {"DataType": "Number", "StringValue": str(self.attempts)},
            "offload.failed_at": text(datetime.now(UTC).isoformat(timespec="milliseconds")),
        }


def failed_body(message: Message[Any], queue: Queue) -> str:
    """The body a failed message is dead-lettered with: itself, less a traceback that would not fit."""
    body = message.encode()
    if len(body) > queue.max_size:  # a long traceback in the options can push it over
        options = {k: v for k, v in message.options.items() if k != "traceback"}
        body = Message(**{**message.asdict(), "options": options}).encode()
    return body.decode("utf-8")


@dataclass(frozen=True)
class _Received:
    """A dead letter taken off its queue for redrive."""

    receipt_handle: str
    #: Where its payload is in S3, when it came through S3.
    pointer: Pointer | None


class DeadLetters:
    """Writes dead letters and redrives them; thread-safe.

    Parameters:
      sqs: The client every request goes through.
      sender: Sends redriven messages in batches.
      prepare: Makes a message ready to send to a queue, as enqueue does.
      payloads: Reads the payloads of dead letters that came through S3.
    """

    def __init__(
        self,
        sqs: SQSClient,
        sender: Sender,
        prepare: Callable[[Queue, Message[Any]], Pending],
        payloads: Payloads,
    ) -> None:
        self._sqs = sqs
        self._sender = sender
        self._prepare = prepare
        self._payloads = payloads

    def send(
        self,
        queue: Queue,
        *,
        body: str,
        reason: Reason,
        message_id: str,
        attributes: dict[str, Any] | None = None,
    ) -> None:
        """Write one dead letter; afterwards the caller may delete the original.

        `attributes` go along with the reason's (a pointer's size attribute). With no dead-letter
        queue (dead_letter=False) it only logs: the message is not kept. Raises ConnectionClosed
        when SQS could not be reached (the original should stay hidden and be tried again), or
        DeadLetteringFailed when SQS refused (the original should come back).
        """
        if queue.dead_letter_url is None:
            logger.error(
                "Message %r on %r is a dead letter (%s: %s), and dead_letter is off: deleting it. "
                "Its body: %.1000s",
                message_id,
                queue.name,
                reason.error_type,
                reason.error,
                body,
            )
            return
        params: dict[str, Any] = {
            "QueueUrl": queue.dead_letter_url,
            "MessageBody": body,
            "MessageAttributes": {**(attributes or {}), **reason.attributes()},
        }
        if queue.fifo:
            params["MessageGroupId"] = DEFAULT_MESSAGE_GROUP
            params["MessageDeduplicationId"] = f"{message_id}-dead"
        try:
            self._sqs.call("SendMessage", **params)
        except ConnectionClosed:
            raise
        except SQSBrokerError as e:
            raise DeadLetteringFailed(
                f"Could not move message {message_id!r} to the dead-letter queue of {queue.name!r} ({e}); "
                "it stays in its queue and is delivered again when its lease ends."
            ) from e
        logger.warning(
            "Moved message %r to the dead-letter queue of %r (%s).", message_id, queue.name, reason.error_type
        )

    def redrive(self, queue: Queue, dead_letter_url: str, *, limit: int | None = None) -> int:
        """Move dead letters back to their queue to be tried afresh; returns how many moved.

        Each message goes back with its retry count reset. Bodies that are not dramatiq messages
        stay in the dead-letter queue. A message is deleted from the dead-letter queue only once
        its queue has it.
        """
        moved = 0
        while limit is None or moved < limit:
            wanted = MAX_RECEIVE_MESSAGES if limit is None else min(MAX_RECEIVE_MESSAGES, limit - moved)
            received = self._sqs.call(
                "ReceiveMessage",
                QueueUrl=dead_letter_url,
                MaxNumberOfMessages=wanted,
                WaitTimeSeconds=0,
                VisibilityTimeout=seconds(REDRIVE_VISIBILITY_MS),
            ).get("Messages", [])
            if not received:
                break
            fresh = self._fresh(queue, received)
            sent, failed = self._sender.send_all(list(fresh))
            done = [fresh[item] for item in sent]
            for chunk in chunks(done):
                self._delete(dead_letter_url, chunk)
            moved += len(done)
            if failed:
                raise BatchSendFailed(failed, len(done))
            if not fresh:
                break
        if moved:
            logger.info("Moved %d dead letters back to %r.", moved, queue.name)
        return moved

    def _delete(self, dead_letter_url: str, chunk: list[_Received]) -> None:
        entries = [{"Id": str(i), "ReceiptHandle": dead.receipt_handle} for i, dead in enumerate(chunk)]
        response = self._sqs.call("DeleteMessageBatch", QueueUrl=dead_letter_url, Entries=entries)
        failed = {int(failure["Id"]) for failure in response.get("Failed", [])}
        for i, dead in enumerate(chunk):
            # Its payload goes with the dead letter; the redriven message has an object of its own.
            if i not in failed and dead.pointer is not None and self._payloads.delete_payloads:
                self._payloads.delete_quietly(dead.pointer)

    def _fresh(self, queue: Queue, received: list[dict[str, Any]]) -> dict[Pending, _Received]:
        """The received dead letters ready to send again, each with where it came from."""
        fresh: dict[Pending, _Received] = {}
        for raw in received:
            try:
                body, pointer = self._payloads.take(raw["Body"], raw.get("MessageAttributes"))
                message = decode(body)
            except (MalformedMessage, PayloadError, ConnectionClosed) as e:
                logger.warning("Dead letter %r cannot be redriven; leaving it: %s", raw["MessageId"], e)
                continue
            options = {k: v for k, v in message.options.items() if k not in _RETRY_OPTIONS}
            item = self._prepare(queue, Message(**{**message.asdict(), "options": options}))
            if queue.fifo:  # a new deduplication id, or SQS would drop it as the message it was
                item.entry["MessageDeduplicationId"] = f"{message.message_id}-redrive-{current_millis()}"
            fresh[item] = _Received(raw["ReceiptHandle"], pointer)
        return fresh
