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
    DeadLetterNotFound,
    MalformedMessage,
    PayloadError,
    PayloadMissing,
    SQSBrokerError,
)
from brokers.limits import MAX_RECEIVE_MESSAGES, chunks, seconds
from brokers.payloads import Payloads, Pointer, parse_pointer
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
#: Dead letters an operator looks at stay hidden this long at most: SQS cannot show a message without
#: receiving it. They are made visible again as soon as the look is over; this bounds the hiding
#: when the process dies first, and must outlast one look (at most PEEK_LIMIT messages, a few requests).
PEEK_VISIBILITY_MS = 30_000
#: Most dead letters one peek shows.
PEEK_LIMIT = 100
#: A peek waits this long for SQS to answer from all its servers: a receive that does not wait (a short
#: poll) asks only some of them and can come back empty while messages wait (sqs-short-and-long-polling).
PEEK_WAIT_MS = 1_000
#: Receives one search for a dead letter by id makes at most (ten messages each).
MAX_FIND_RECEIVES = 100
#: The message attributes a reason travels in, and the SQS attributes a peek asks for besides them.
_REASON_PREFIX = "offload."
_SYSTEM_ATTRIBUTES = ["SentTimestamp", "ApproximateReceiveCount"]


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
                # Waiting, as a peek does: a short poll can come back empty while letters wait,
                # which would end the redrive early. The last, empty receive costs this wait.
                WaitTimeSeconds=seconds(PEEK_WAIT_MS),
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

    # --- what operators do with single dead letters ------------------------------------------------
    def peek(self, queue: Queue, *, limit: int = PEEK_LIMIT) -> list[DeadLetter]:
        """Up to `limit` dead letters of a queue with their reasons, oldest first; nothing is removed.

        SQS cannot show a message without receiving it: each one shown is received with a visibility
        timeout of PEEK_VISIBILITY_MS and made visible again as soon as the peek is over. In between
        nobody else sees it (a redrive running then skips it), and each peek adds one to its receive
        count. On a standard queue SQS may show a different sample of a large queue each time; on a
        FIFO queue every dead letter is in one message group, so a peek shows the first ten. A dead
        letter that came through S3 is shown by its reason; its payload is not fetched (`get` does).
        """
        url = self._url(queue)
        waiting = self._visible(url)
        held: dict[str, dict[str, Any]] = {}
        try:
            for _ in range(limit // MAX_RECEIVE_MESSAGES + 2):
                if len(held) >= min(limit, waiting):
                    break
                received = self._receive(url, min(MAX_RECEIVE_MESSAGES, limit - len(held)))
                if not received:
                    break
                held.update((raw["MessageId"], raw) for raw in received)
        finally:
            self._release(url, [raw["ReceiptHandle"] for raw in held.values()])
        letters = [self._letter(raw, fetch=False) for raw in held.values()]
        return sorted(letters, key=lambda letter: (letter.failed_at, letter.id))

    def get(self, queue: Queue, dead_letter_id: str) -> DeadLetter:
        """One dead letter by its id (its SQS MessageId), its S3 payload fetched, left where it is.

        Raises DeadLetterNotFound, or ConnectionClosed or PayloadError when S3 could not answer.
        """
        url = self._url(queue)
        raw = self._find(url, dead_letter_id)
        try:
            return self._letter(raw, fetch=True)
        finally:
            self._release(url, [raw["ReceiptHandle"]])

    def delete(self, queue: Queue, dead_letter_id: str) -> DeadLetter:
        """Delete one dead letter for good, and its S3 payload; returns what it was.

        Raises DeadLetterNotFound.
        """
        url = self._url(queue)
        raw = self._find(url, dead_letter_id)
        letter = self._letter(raw, fetch=False)
        try:
            self._sqs.call("DeleteMessage", QueueUrl=url, ReceiptHandle=raw["ReceiptHandle"])
        except BaseException:
            self._release(url, [raw["ReceiptHandle"]])
            raise
        if letter.pointer is not None and self._payloads.delete_payloads:
            self._payloads.delete_quietly(letter.pointer)
        logger.info("Deleted dead letter %r of %r.", dead_letter_id, queue.name)
        return letter

    def retry(self, queue: Queue, dead_letter_id: str) -> DeadLetter:
        """Send one dead letter back to its queue with its retries reset, then delete it; returns it.

        Raises DeadLetterNotFound, MalformedMessage when it is not a dramatiq message or its S3
        payload is gone (it can only be deleted), ConnectionClosed or PayloadError when S3 could not
        answer, or BatchSendFailed when its queue did not take it (it stays a dead letter).
        """
        url = self._url(queue)
        raw = self._find(url, dead_letter_id)
        try:
            letter = self._letter(raw, fetch=True)
            if letter.message is None:
                raise MalformedMessage(
                    f"Dead letter {dead_letter_id!r} cannot run, only be deleted: {letter.malformed}"
                )
            fresh = self._fresh(queue, [raw])
            if not fresh:  # its payload could not be read again just now
                raise SQSBrokerError(f"Dead letter {dead_letter_id!r} could not be read again; it stays.")
            sent, failed = self._sender.send_all(list(fresh))
            if failed:
                raise BatchSendFailed(failed, len(sent))
        except BaseException:
            self._release(url, [raw["ReceiptHandle"]])
            raise
        self._sqs.call("DeleteMessage", QueueUrl=url, ReceiptHandle=raw["ReceiptHandle"])
        if letter.pointer is not None and self._payloads.delete_payloads:
            # The redriven message has an object of its own.
            self._payloads.delete_quietly(letter.pointer)
        logger.info("Sent dead letter %r back to %r.", dead_letter_id, queue.name)
        return letter

    def _letter(self, raw: dict[str, Any], *, fetch: bool) -> DeadLetter:
        """A received dead letter; with `fetch`, the payload of one that came through S3 is read."""
        try:
            pointer = parse_pointer(raw["Body"], raw.get("MessageAttributes"))
        except MalformedMessage as e:
            return DeadLetter.from_sqs(raw, malformed=str(e))
        if pointer is None or not fetch:
            return DeadLetter.from_sqs(raw, pointer=pointer)
        try:
            payload = self._payloads.fetch(pointer)
        except (PayloadMissing, MalformedMessage) as e:
            return DeadLetter.from_sqs(raw, pointer=pointer, malformed=f"its S3 payload cannot be read: {e}")
        return DeadLetter.from_sqs(raw, pointer=pointer, payload=payload)

    def _url(self, queue: Queue) -> str:
        if queue.dead_letter_url is None:
            raise SQSBrokerError(
                f"Queue {queue.name!r} has no dead-letter queue: the broker has dead_letter=False."
            )
        return queue.dead_letter_url

    def _visible(self, url: str) -> int:
        attributes = self._sqs.call(
            "GetQueueAttributes", QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"]
        )
        return int(attributes["Attributes"].get("ApproximateNumberOfMessages", 0))

    def _receive(self, url: str, wanted: int) -> list[dict[str, Any]]:
        received: list[dict[str, Any]] = self._sqs.call(
            "ReceiveMessage",
            QueueUrl=url,
            MaxNumberOfMessages=wanted,
            WaitTimeSeconds=seconds(PEEK_WAIT_MS),
            VisibilityTimeout=seconds(PEEK_VISIBILITY_MS),
            MessageAttributeNames=["All"],
            MessageSystemAttributeNames=_SYSTEM_ATTRIBUTES,
        ).get("Messages", [])
        return received

    def _find(self, url: str, dead_letter_id: str) -> dict[str, Any]:
        """Receive until the dead letter turns up; the others are made visible again at once."""
        held: list[str] = []
        try:
            seen, waiting = 0, self._visible(url)
            for _ in range(MAX_FIND_RECEIVES):
                if seen >= waiting:
                    break
                received = self._receive(url, MAX_RECEIVE_MESSAGES)
                if not received:
                    break
                seen += len(received)
                for raw in received:
                    if raw["MessageId"] == dead_letter_id:
                        held += [other["ReceiptHandle"] for other in received if other is not raw]
                        return raw
                    held.append(raw["ReceiptHandle"])
        finally:
            self._release(url, held)
        raise DeadLetterNotFound(
            f"Dead letter {dead_letter_id!r} is not in the dead-letter queue: it was retried or deleted, "
            "or someone is looking at it right now."
        )

    def _release(self, url: str, handles: list[str]) -> None:
        """Make received dead letters visible again; those it cannot come back when their peek ends."""
        for chunk in chunks(handles):
            entries = [
                {"Id": str(i), "ReceiptHandle": handle, "VisibilityTimeout": 0}
                for i, handle in enumerate(chunk)
            ]
            try:
                response = self._sqs.call("ChangeMessageVisibilityBatch", QueueUrl=url, Entries=entries)
            except (ConnectionClosed, SQSBrokerError) as e:
                logger.warning(
                    "Could not make %d dead letters visible again (they are in %d s): %s",
                    len(chunk),
                    seconds(PEEK_VISIBILITY_MS),
                    e,
                )
                continue
            for failure in response.get("Failed", []):
                logger.info("Could not make a dead letter visible again: %s.", failure)


@dataclass(frozen=True)
class DeadLetter:
    """One message in a dead-letter queue, as an operator sees it.

    Messages SQS moved there itself (its RedrivePolicy, after a process crashed while holding them)
    carry no reason: their error_type and error are empty and `attempts` is their receive count. One
    that came through S3 has its `pointer`; its body and message are known once its payload is read.
    """

    #: The dead letter's SQS MessageId: what names it to get, retry or delete it.
    id: str
    #: The message as sent: its S3 payload when that was read, else the SQS body (maybe a pointer).
    body: str
    actor: str
    queue: str
    error_type: str
    error: str
    attempts: int
    #: When it became a dead letter (for a message SQS moved: when it was first sent).
    failed_at: datetime
    #: Receives of the dead letter itself, peeks included.
    receive_count: int
    #: The dramatiq message the body holds; None when the body is not one.
    message: Message[Any] | None
    #: Why the body is not a dramatiq message, when it is known not to be one.
    malformed: str = ""
    #: Where its payload is in S3, when it came through S3.
    pointer: Pointer | None = None

    @property
    def can_retry(self) -> bool:
        """Whether it may be a message a worker can run (one in S3 is only known to be once read)."""
        return self.message is not None or (self.pointer is not None and not self.malformed)

    @classmethod
    def from_sqs(
        cls,
        raw: dict[str, Any],
        *,
        pointer: Pointer | None = None,
        payload: str | None = None,
        malformed: str = "",
    ) -> DeadLetter:
        """A dead letter from a ReceiveMessage entry that asked for every message attribute, with
        its S3 pointer and payload when it came through S3, or why it cannot be run."""
        reason = {
            name.removeprefix(_REASON_PREFIX): value.get("StringValue", "")
            for name, value in raw.get("MessageAttributes", {}).items()
            if name.startswith(_REASON_PREFIX)
        }
        reason = {name: "" if value == "-" else value for name, value in reason.items()}
        system = raw.get("Attributes", {})
        body = payload if payload is not None else raw["Body"]
        message: Message[Any] | None = None
        if not malformed and (pointer is None or payload is not None):
            try:
                message = decode(body)
            except MalformedMessage as e:
                malformed = str(e)
        sent_at = datetime.fromtimestamp(int(system.get("SentTimestamp", 0)) / 1000, UTC)
        receive_count = int(system.get("ApproximateReceiveCount", 0))
        return cls(
            id=raw["MessageId"],
            body=body,
            actor=reason.get("actor") or (message.actor_name if message else ""),
            queue=reason.get("queue") or (message.queue_name if message else ""),
            error_type=reason.get("error_type", ""),
            error=reason.get("error", ""),
            attempts=_number(reason.get("attempts"), default=receive_count),
            failed_at=_timestamp(reason.get("failed_at"), default=sent_at),
            receive_count=receive_count,
            message=message,
            malformed=malformed,
            pointer=pointer,
        )


def _number(text: str | None, *, default: int) -> int:
    try:
        return int(text) if text else default
    except ValueError:
        return default


def _timestamp(text: str | None, *, default: datetime) -> datetime:
    try:
        return datetime.fromisoformat(text) if text else default
    except ValueError:
        return default
