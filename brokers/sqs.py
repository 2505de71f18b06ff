"""SQSBroker: a dramatiq broker on Amazon SQS that batches both ends and never drops a retry."""

from __future__ import annotations

import contextlib
import json
import logging
import math
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from dramatiq.broker import Broker
from dramatiq.common import current_millis, q_name
from dramatiq.errors import ConnectionClosed, DecodeError, QueueJoinTimeout, QueueNotFound
from dramatiq.message import Message

from brokers.client import SQSClient
from brokers.consumer import MAX_DELAY_S, _SQSConsumer
from brokers.errors import (
    BatchSendFailed,
    DeadLetteringFailed,
    FifoDelayNotSupported,
    InvalidQueueName,
    MessageTooLarge,
    QueueDoesNotExist,
    SQSBrokerError,
    SQSRequestFailed,
)
from brokers.leases import MAX_BATCH_ENTRIES, LeaseKeeper
from brokers.names import is_fifo, sqs_queue_name
from brokers.sending import Pending, Sender

if TYPE_CHECKING:
    from dramatiq.middleware import Middleware

logger = logging.getLogger(__name__)

#: How long a received message stays hidden before SQS delivers it again, unless heartbeats extend it.
DEFAULT_VISIBILITY_TIMEOUT = 60_000
#: The shortest lease that leaves the heartbeat room to work (SQS counts visibility in whole seconds).
MIN_VISIBILITY_TIMEOUT = 2_000
#: Acks are deleted in batches of 10, or after this long, whichever comes first.
DEFAULT_ACK_INTERVAL = 500
#: After a receive that came back partly full, wait up to this long so the next one brings a fuller
#: batch (the wait is what the observed arrival rate needs to fill it).
DEFAULT_RECEIVE_LINGER = 100
#: The largest maxReceiveCount a RedrivePolicy takes (sqs-dead-letter-queues).
MAX_RECEIVE_COUNT = 1_000
#: Dead letters keep the longest retention SQS allows: 14 days (sqs-quotas-messages).
MAX_RETENTION_S = 14 * 24 * 60 * 60
#: Message group of FIFO messages that name none (option "message_group_id").
DEFAULT_MESSAGE_GROUP = "default"
#: Dead letters being redriven stay hidden this long, in seconds, so one pass never sees one twice.
REDRIVE_VISIBILITY_S = 60
#: How often join() looks at the queue's counters.
JOIN_POLL_S = 0.1
#: Longest error text kept on a dead letter.
MAX_REASON_CHARS = 1_000

_COUNTS = {
    "visible": "ApproximateNumberOfMessages",
    "in_flight": "ApproximateNumberOfMessagesNotVisible",
    "delayed": "ApproximateNumberOfMessagesDelayed",
}
_COUNT_ATTRIBUTES = list(_COUNTS.values())
#: Options the Retries middleware keeps per message; a redriven message starts without them.
_RETRY_OPTIONS = {"retries", "traceback", "requeue_timestamp"}
_EXISTS_CODES = {"QueueAlreadyExists", "QueueNameExists", "AWS.SimpleQueueService.QueueNameExists"}
_PURGE_IN_PROGRESS = {"PurgeQueueInProgress", "AWS.SimpleQueueService.PurgeQueueInProgress"}


@dataclass(frozen=True)
class _Queue:
    name: str
    url: str
    dead_letter_url: str | None
    max_size: int
    fifo: bool


class SQSBroker(Broker):
    """A dramatiq broker on Amazon SQS (or any SQS-compatible endpoint).

    Parameters:
      namespace: Prefix of every SQS queue name this broker uses.
      endpoint_url, region_name, **client_options: Passed to the boto3 client it makes.
      client: A boto3 SQS client to use instead.
      visibility_timeout: The lease of a received message, in milliseconds; heartbeats extend it
        while the message waits or runs, so a worker that dies gives its messages back this soon.
      dead_letter: Give each queue a dead-letter queue ("<name>-dlq") for nacked messages.
      create_queues: Create missing queues; when False, never send CreateQueue.
      max_receive_count: When set, queues this broker creates get an SQS RedrivePolicy moving a
        message to the dead-letter queue after that many receives: the backstop for messages that
        crash the worker process before it can dead-letter them itself.
      ack_interval: Longest wait, in milliseconds, before acked messages are deleted.
      receive_linger: Longest pause, in milliseconds, after a partly full receive, to batch the next.
    """

    def __init__(
        self,
        *,
        namespace: str | None = None,
        endpoint_url: str | None = None,
        region_name: str | None = None,
        client: Any = None,
        visibility_timeout: int = DEFAULT_VISIBILITY_TIMEOUT,
        dead_letter: bool = True,
        create_queues: bool = True,
        middleware: list[Middleware] | None = None,
        max_receive_count: int | None = None,
        ack_interval: int = DEFAULT_ACK_INTERVAL,
        receive_linger: int = DEFAULT_RECEIVE_LINGER,
        **client_options: Any,
    ) -> None:
        super().__init__(middleware=middleware)
        if visibility_timeout < MIN_VISIBILITY_TIMEOUT:
            raise ValueError(
                f"visibility_timeout must be at least {MIN_VISIBILITY_TIMEOUT} ms, not {visibility_timeout}."
            )
        if not 0 < ack_interval < visibility_timeout / 2:
            raise ValueError("ack_interval must be positive and shorter than half the visibility_timeout.")
        if namespace:
            sqs_queue_name("q", namespace=namespace)  # fails early on an illegal namespace
        self.namespace = namespace or None
        # SQS counts visibility in whole seconds: round the lease up so it is never shorter than asked.
        self.visibility_timeout = math.ceil(visibility_timeout / 1000) * 1000
        self.dead_letter = dead_letter
        self.create_queues = create_queues
        if max_receive_count is not None and not (1 <= max_receive_count <= MAX_RECEIVE_COUNT):
            raise ValueError(f"max_receive_count must be between 1 and {MAX_RECEIVE_COUNT}.")
        self.max_receive_count = max_receive_count
        self.receive_linger = receive_linger
        self.queues: dict[str, str] = {}
        self.actor_options.add("message_group_id")
        self._sqs = SQSClient(
            client=client, endpoint_url=endpoint_url, region_name=region_name, **client_options
        )
        self._sender = Sender(self._sqs)
        self._leases = LeaseKeeper(
            self._sqs, visibility_timeout=self.visibility_timeout, ack_interval=ack_interval
        )
        self._resolved: dict[str, _Queue] = {}
        self._resolve_lock = threading.Lock()
        self._local = threading.local()

    # --- what operators and tests read -----------------------------------------------------------
    @property
    def client(self) -> Any:
        """The boto3 client this broker sends every request with."""
        return self._sqs.client

    @property
    def stats(self) -> dict[str, int]:
        """SQS requests made so far, by action name, botocore's own retries included."""
        return self._sqs.stats

    def queue_url(self, queue_name: str) -> str:
        """The URL of a declared queue's SQS queue (created if missing and allowed)."""
        return self._queue(queue_name).url

    def dead_letter_queue_url(self, queue_name: str) -> str:
        """The URL of a declared queue's dead-letter queue."""
        queue = self._queue(queue_name)
        if queue.dead_letter_url is None:
            raise SQSBrokerError(
                f"Queue {queue_name!r} has no dead-letter queue: the broker has dead_letter=False."
            )
        return queue.dead_letter_url

    # --- declaring -------------------------------------------------------------------------------
    def declare_queue(self, queue_name: str) -> None:
        """Record a queue; its SQS queue is looked up (or created) on first use, not at import."""
        if queue_name in self.queues:
            return
        self.emit_before("declare_queue", queue_name)
        sqs_name = sqs_queue_name(queue_name, namespace=self.namespace)
        if self.dead_letter:
            sqs_queue_name(queue_name, namespace=self.namespace, dead_letter=True)
        for other, other_sqs_name in self.queues.items():
            if other_sqs_name == sqs_name:
                raise InvalidQueueName(
                    f"Queues {other!r} and {queue_name!r} both map to SQS queue {sqs_name!r}."
                )
        self.queues[queue_name] = sqs_name
        self.emit_after("declare_queue", queue_name)

    def _queue(self, queue_name: str) -> _Queue:
        queue_name = q_name(queue_name)
        queue = self._resolved.get(queue_name)
        if queue is not None:
            return queue
        if queue_name not in self.queues:
            raise QueueNotFound(queue_name)
        with self._resolve_lock:
            queue = self._resolved.get(queue_name)
            if queue is None:
                queue = self._resolved[queue_name] = self._set_up(queue_name)
        return queue

    def _set_up(self, queue_name: str) -> _Queue:
        fifo = is_fifo(queue_name)
        dead_letter_url = None
        if self.dead_letter:
            dead_letter_name = sqs_queue_name(queue_name, namespace=self.namespace, dead_letter=True)
            dead_letter_url = self._get_or_create(queue_name, dead_letter_name, fifo=fifo)
        redrive = None
        if dead_letter_url and self.max_receive_count:
            arn = self._sqs.call("GetQueueAttributes", QueueUrl=dead_letter_url, AttributeNames=["QueueArn"])
            redrive = {
                "deadLetterTargetArn": arn["Attributes"]["QueueArn"],
                "maxReceiveCount": self.max_receive_count,
            }
        url = self._get_or_create(queue_name, self.queues[queue_name], fifo=fifo, redrive=redrive)
        attributes = self._sqs.call("GetQueueAttributes", QueueUrl=url, AttributeNames=["MaximumMessageSize"])
        max_size = int(attributes.get("Attributes", {}).get("MaximumMessageSize", 262_144))
        return _Queue(queue_name, url, dead_letter_url, max_size, fifo)

    def _get_or_create(
        self, queue_name: str, sqs_name: str, *, fifo: bool, redrive: dict[str, Any] | None = None
    ) -> str:
        try:
            return self._sqs.call("GetQueueUrl", QueueName=sqs_name)["QueueUrl"]
        except QueueDoesNotExist:
            if not self.create_queues:
                raise QueueDoesNotExist(
                    f"SQS queue {sqs_name!r} (for queue {queue_name!r}) does not exist, and this broker "
                    "may not create queues (create_queues=False): create it first."
                ) from None
        attributes = {
            "MessageRetentionPeriod": str(MAX_RETENTION_S),
            "VisibilityTimeout": str(self.visibility_timeout // 1000),
        }
        if fifo:
            attributes["FifoQueue"] = "true"
        if redrive:
            attributes["RedrivePolicy"] = json.dumps(redrive)
        try:
            url = self._sqs.call("CreateQueue", QueueName=sqs_name, Attributes=attributes)["QueueUrl"]
        except SQSRequestFailed as e:
            if e.code not in _EXISTS_CODES:
                raise
            return self._sqs.call("GetQueueUrl", QueueName=sqs_name)["QueueUrl"]
        logger.info("Created SQS queue %r.", sqs_name)
        return url

    # --- sending ---------------------------------------------------------------------------------
    def enqueue(self, message: Message, *, delay: int | None = None) -> Message:
        """Send a message, or hold it for the enclosing `batch()` block on this thread.

        Delays of any length work: SQS delays up to 15 minutes; longer ones carry an ETA and are
        sent around again until due. Raises MessageTooLarge, FifoDelayNotSupported, QueueNotFound,
        or dramatiq's ConnectionClosed when SQS cannot be reached.
        """
        try:
            queue = self._queue(message.queue_name)
            pending = self._prepare(queue, message, delay)
        except Exception:
            self._protect(message)
            raise
        batch = getattr(self._local, "batch", None)
        self.emit_before("enqueue", pending.message, delay)
        if batch is not None:
            batch.append(pending)
            return pending.message
        try:
            self._sender.send(pending)
        except Exception:
            self._protect(message)
            raise
        self.emit_after("enqueue", pending.message, delay)
        return pending.message

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Send every message enqueued on this thread inside the block with SendMessageBatch.

        The messages go out when the block exits (also when it raises). Entries SQS fails on its
        side are retried; BatchSendFailed names any that still could not be sent.
        """
        if getattr(self._local, "batch", None) is not None:
            yield  # nested: the outermost block sends
            return
        self._local.batch = []
        try:
            yield
        finally:
            pending, self._local.batch = self._local.batch, None
            self._send_batch(pending)

    def _prepare(self, queue: _Queue, message: Message, delay: int | None) -> Pending:
        message = message._message if hasattr(message, "_message") else message
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
            actor = self.actors.get(message.actor_name)
            entry["MessageGroupId"] = str(
                message.options.get("message_group_id")
                or (actor.options.get("message_group_id") if actor else None)
                or DEFAULT_MESSAGE_GROUP
            )
            # A retry is a new message for deduplication, or SQS would drop it as a repeat.
            entry["MessageDeduplicationId"] = message.message_id + (f"-retry{retries}" if retries else "")
        elif delay:
            message = message.copy(options={"eta": current_millis() + delay})
            # Round up: a message must never run before its delay is over.
            entry["DelaySeconds"] = min(MAX_DELAY_S, math.ceil(delay / 1000))
        body = message.encode()
        if len(body) > queue.max_size:
            raise MessageTooLarge(
                f"Message {message.message_id!r} for queue {queue.name!r} is {len(body):,} bytes; the "
                f"queue accepts at most {queue.max_size:,} bytes."
            )
        entry["MessageBody"] = body.decode("utf-8")
        return Pending(queue, entry, len(body), message, delay)

    def _protect(self, message: Message) -> None:
        # A retry that could not be enqueued must not be lost when the worker acks the original.
        if message.options.get("retries") and self._leases.protect(message.message_id):
            logger.warning(
                "Retry of message %r was not enqueued; keeping the original in SQS.", message.message_id
            )

    def _send_batch(self, pending: list[Pending]) -> None:
        sent, failed = self._sender.send_all(pending)
        for item in sent:
            self.emit_after("enqueue", item.message, item.delay)
        if failed:
            raise BatchSendFailed(failed, len(sent))

    # --- consuming -------------------------------------------------------------------------------
    def consume(self, queue_name: str, prefetch: int = 1, timeout: int = 30_000) -> _SQSConsumer:
        """A consumer of the queue whose long poll holds at most `prefetch` unacked messages."""
        return _SQSConsumer(self, self._queue(queue_name), prefetch=prefetch, timeout=timeout)

    def _dead_letter(self, message: Any) -> None:
        """Move a failed message to its dead-letter queue with the reason; raises if it could not."""
        queue = message._queue
        if queue.dead_letter_url is None:
            logger.error("Message %r failed and dead_letter is off; deleting it.", message.message_id)
            return
        error = message._exception
        attempts = max(1, int(message.options.get("retries", 0) or 0))
        attributes = _reason(
            actor=message.actor_name,
            queue=queue.name,
            error_type=type(error).__name__ if error is not None else "Failed",
            error=str(error) if error is not None else "The message was rejected.",
            attempts=attempts,
        )
        body = message._message.encode()
        if len(body) > queue.max_size:  # a long traceback in the options can push it over
            options = {k: v for k, v in message.options.items() if k != "traceback"}
            body = Message(**{**message._message.asdict(), "options": options}).encode()
        self._send_dead_letter(
            queue, body.decode("utf-8"), attributes, message.message_id, message.receipt_handle
        )

    def _dead_letter_undecodable(self, queue: _Queue, raw: dict[str, Any], error: Exception) -> None:
        cause = error.__cause__ or error
        attributes = _reason(
            actor="",
            queue=queue.name,
            error_type="DecodeError",
            error=f"The body is not a dramatiq message: {type(cause).__name__}: {cause}",
            attempts=1,
        )
        logger.error(
            "Message %r on %r cannot be decoded; moving it to the dead-letter queue.",
            raw["MessageId"],
            queue.name,
        )
        if queue.dead_letter_url is None:
            self._leases.forget(raw["ReceiptHandle"])
            return
        try:
            self._send_dead_letter(
                queue, raw.get("Body", ""), attributes, raw["MessageId"], raw["ReceiptHandle"]
            )
        except (ConnectionClosed, SQSBrokerError):
            logger.exception("Could not dead-letter undecodable message %r.", raw["MessageId"])
            self._leases.forget(raw["ReceiptHandle"])
            return
        self._leases.ack(raw["ReceiptHandle"])

    def _send_dead_letter(
        self, queue: _Queue, body: str, attributes: dict[str, Any], message_id: str, receipt_handle: str
    ) -> None:
        params: dict[str, Any] = {
            "QueueUrl": queue.dead_letter_url,
            "MessageBody": body,
            "MessageAttributes": attributes,
        }
        if queue.fifo:
            params["MessageGroupId"] = DEFAULT_MESSAGE_GROUP
            params["MessageDeduplicationId"] = f"{message_id}-dead"
        try:
            self._sqs.call("SendMessage", **params)
        except ConnectionClosed:
            raise  # the worker retries the nack; the lease keeps the message hidden meanwhile
        except SQSBrokerError as e:
            self._leases.forget(receipt_handle)
            raise DeadLetteringFailed(
                f"Could not move message {message_id!r} to the dead-letter queue of {queue.name!r} ({e}); "
                "it stays in its queue and is delivered again when its lease ends."
            ) from e
        logger.warning("Moved message %r to the dead-letter queue of %r.", message_id, queue.name)

    # --- operating -----------------------------------------------------------------------------
    def queue_counts(self, queue_name: str) -> dict[str, int]:
        """A queue's approximate counts as SQS reports them: visible, in flight, delayed, dead letters."""
        queue = self._queue(queue_name)
        attributes = self._sqs.call(
            "GetQueueAttributes", QueueUrl=queue.url, AttributeNames=_COUNT_ATTRIBUTES
        )
        counts = {key: int(attributes["Attributes"].get(name, 0)) for key, name in _COUNTS.items()}
        dead = 0
        if queue.dead_letter_url:
            attributes = self._sqs.call(
                "GetQueueAttributes", QueueUrl=queue.dead_letter_url, AttributeNames=_COUNT_ATTRIBUTES
            )
            dead = sum(int(attributes["Attributes"].get(name, 0)) for name in _COUNT_ATTRIBUTES)
        return {**counts, "dead_letters": dead}

    def redrive(self, queue_name: str, *, limit: int | None = None) -> int:
        """Move dead letters back to their queue to be tried afresh; returns how many moved.

        Each message goes back with its retry count reset. Bodies that are not dramatiq messages
        stay in the dead-letter queue. A message is deleted from the dead-letter queue only once
        its queue has it.
        """
        queue = self._queue(queue_name)
        if queue.dead_letter_url is None:
            raise SQSBrokerError(
                f"Queue {queue_name!r} has no dead-letter queue: the broker has dead_letter=False."
            )
        moved = 0
        while limit is None or moved < limit:
            wanted = MAX_BATCH_ENTRIES if limit is None else min(MAX_BATCH_ENTRIES, limit - moved)
            received = self._sqs.call(
                "ReceiveMessage",
                QueueUrl=queue.dead_letter_url,
                MaxNumberOfMessages=wanted,
                WaitTimeSeconds=0,
                VisibilityTimeout=REDRIVE_VISIBILITY_S,
            ).get("Messages", [])
            if not received:
                break
            items, handles = [], []
            for raw in received:
                try:
                    message = Message.decode(raw["Body"].encode("utf-8"))
                except DecodeError:
                    logger.warning("Dead letter %r is not a dramatiq message; leaving it.", raw["MessageId"])
                    continue
                options = {k: v for k, v in message.options.items() if k not in _RETRY_OPTIONS}
                fresh = Message(**{**message.asdict(), "options": options})
                item = self._prepare(queue, fresh, None)
                if queue.fifo:  # a new deduplication id, or SQS would drop it as the message it was
                    item.entry["MessageDeduplicationId"] = f"{fresh.message_id}-redrive-{current_millis()}"
                items.append(item)
                handles.append(raw["ReceiptHandle"])
            sent, failed = self._sender.send_all(items)
            sent_ids = {id(item) for item in sent}
            done = [handle for item, handle in zip(items, handles, strict=True) if id(item) in sent_ids]
            for start in range(0, len(done), MAX_BATCH_ENTRIES):
                entries = [{"Id": str(i), "ReceiptHandle": h} for i, h in enumerate(done[start : start + 10])]
                self._sqs.call("DeleteMessageBatch", QueueUrl=queue.dead_letter_url, Entries=entries)
            moved += len(done)
            if failed:
                raise BatchSendFailed(failed, len(done))
            if not items:
                break
        if moved:
            logger.info("Moved %d dead letters back to %r.", moved, queue_name)
        return moved

    # --- maintenance -----------------------------------------------------------------------------
    def flush(self, queue_name: str) -> None:
        """Drop every message of a queue (visible, delayed and in flight)."""
        self._purge(self._queue(queue_name).url)

    def flush_all(self) -> None:
        """Drop every message of every declared queue and of their dead-letter queues."""
        for queue_name in list(self.queues):
            queue = self._queue(queue_name)
            self._purge(queue.url)
            if queue.dead_letter_url:
                self._purge(queue.dead_letter_url)

    def _purge(self, url: str) -> None:
        try:
            self._sqs.call("PurgeQueue", QueueUrl=url)
        except SQSRequestFailed as e:
            if e.code not in _PURGE_IN_PROGRESS:
                raise
            # SQS allows one purge a minute per queue; drain what is visible instead.
            while messages := self._sqs.call(
                "ReceiveMessage", QueueUrl=url, MaxNumberOfMessages=MAX_BATCH_ENTRIES, WaitTimeSeconds=0
            ).get("Messages"):
                entries = [
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)
                ]
                self._sqs.call("DeleteMessageBatch", QueueUrl=url, Entries=entries)
        self._leases.forget_queue(url)

    def join(self, queue_name: str, *, timeout: int | None = None) -> None:
        """Wait until the queue holds no messages at all: none visible, delayed or in flight.

        Raises QueueJoinTimeout when `timeout` milliseconds pass first.
        """
        queue = self._queue(queue_name)
        deadline = None if timeout is None else time.monotonic() + timeout / 1000
        while True:
            if self._leases.pending(queue.url) == 0:
                counts = self._sqs.call(
                    "GetQueueAttributes", QueueUrl=queue.url, AttributeNames=_COUNT_ATTRIBUTES
                )["Attributes"]
                if all(int(counts.get(name, 0)) == 0 for name in _COUNT_ATTRIBUTES):
                    return
            if deadline is not None and time.monotonic() >= deadline:
                raise QueueJoinTimeout(queue_name)
            time.sleep(JOIN_POLL_S)

    def close(self) -> None:
        """Delete acked messages still waiting for their batch; stop the lease keeper."""
        self._leases.close()


def _reason(*, actor: str, queue: str, error_type: str, error: str, attempts: int) -> dict[str, Any]:
    def text(value: str) -> dict[str, str]:
        return {"DataType": "String", "StringValue": value or "-"}

    return {
        "offload.actor": text(actor),
        "offload.queue": text(queue),
        "offload.error_type": text(error_type),
        "offload.error": text(error[:MAX_REASON_CHARS]),
        "offload.attempts": {"DataType": "Number", "StringValue": str(attempts)},
        "offload.failed_at": text(datetime.now(UTC).isoformat(timespec="milliseconds")),
    }
