"""SQS events from AWS Lambda's event source: each record judged, run and answered as the worker would.

Lambda's SQS event source receives a batch, invokes the function with it, and deletes every record
the function's answer does not name (`{"batchItemFailures": [{"itemIdentifier": <messageId>}]}`,
with ReportBatchItemFailures on the mapping). `SQSEventHandler` is such a function for a broker's
actors, built from the rooms the consumer uses, so a message cannot tell which of the two ran it:

- a record's body is judged by `brokers.receiving.decide()`: run it, send it around again (not due
  yet), or dead-letter it with the reason (`brokers.deadletters`);
- a record to run goes through dramatiq's own `WorkerThread.process_message` with the broker's
  middleware: retries and their backoff, age and time limits, and whatever the application adds;
- what the worker would ack, retry or nack becomes the answer. Not reported (Lambda deletes it): a
  success, a retry sent with its backoff, a dead letter written. Reported (it comes back after its
  visibility timeout): a retry or dead letter SQS did not take, a record not started before the
  invocation's deadline.

A FIFO queue keeps its order instead of re-sending: the first record that fails and every record
after it are reported, and the later ones are not run. Its attempts are SQS's own count
(ApproximateReceiveCount), and the last one dead-letters the message.

A record never makes the handler raise: a raise fails the whole batch, the good records with it.
Only an event that is not an SQS event at all is refused (NotAnSQSEvent).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, replace
from typing import Any, cast

from dramatiq.actor import Actor
from dramatiq.common import current_millis
from dramatiq.errors import ActorNotFound, ConnectionClosed
from dramatiq.message import Message
from dramatiq.middleware import TimeLimit
from dramatiq.worker import ConsumerThread, WorkerThread

from brokers.client import SQSClient
from brokers.deadletters import Reason, failed_body
from brokers.errors import (
    MalformedMessage,
    NotAnSQSEvent,
    PayloadError,
    PayloadMissing,
    SQSBrokerError,
)
from brokers.intake import SQSMessage
from brokers.limits import seconds
from brokers.names import is_fifo
from brokers.payloads import Pointer
from brokers.queues import Queue
from brokers.receiving import DECODE_ERROR, Reject, Resend, Run, decide
from brokers.record_run import ABSENT, KEEP, EveryQueue, RecordBroker, Returned, Untracked, boot_once
from brokers.sqs import SQSBroker

logger = logging.getLogger(__name__)

#: The eventSource of every record Lambda's SQS event source sends (services-sqs: event shape).
EVENT_SOURCE = "aws:sqs"
#: Time kept back from the invocation's deadline, in milliseconds. dramatiq's TimeLimit looks at its
#: deadlines once a second, and a stopped actor's retry or dead letter must still be sent, and the
#: answer given, before Lambda ends the invocation (and with it every record's fate) at its timeout.
DEFAULT_DEADLINE_MARGIN = 5_000

_Answer = dict[str, list[dict[str, str]]]


@dataclass(frozen=True)
class QueueArn:
    """Where a record comes from: `arn:<partition>:sqs:<region>:<account>:<name>`."""

    region: str
    account: str
    name: str

    @classmethod
    def parse(cls, arn: object) -> QueueArn:
        """Raises NotAnSQSEvent for anything but an SQS queue's ARN."""
        parts = arn.split(":") if isinstance(arn, str) else []
        if len(parts) != 6 or parts[0] != "arn" or parts[2] != "sqs" or not all(parts[3:]):
            raise NotAnSQSEvent(
                f"A record's eventSourceARN must be an SQS queue's ARN "
                f"(arn:aws:sqs:<region>:<account>:<queue>), not {arn!r}."
            )
        return cls(region=parts[3], account=parts[4], name=parts[5])


def sqs_records(event: object) -> list[dict[str, Any]]:
    """The records of an SQS event; raises NotAnSQSEvent, saying what the event is, for any other."""
    records = event.get("Records") if isinstance(event, dict) else None
    if not isinstance(records, list):
        keys = sorted(event) if isinstance(event, dict) else type(event).__name__
        raise NotAnSQSEvent(
            f"This function takes SQS events from Lambda's event source ({{'Records': [...]}}); "
            f"this event is not one (its keys: {keys})."
        )
    for number, record in enumerate(records):
        source = record.get("eventSource") if isinstance(record, dict) else None
        if source != EVENT_SOURCE:
            raise NotAnSQSEvent(
                f"Record {number} of the event comes from {source!r}, not {EVENT_SOURCE!r}: this "
                "function takes SQS events only."
            )
        if not isinstance(record.get("messageId"), str) or not record["messageId"]:
            raise NotAnSQSEvent(f"Record {number} of the event has no messageId.")
        QueueArn.parse(record.get("eventSourceARN"))
    return records


def record_body(record: dict[str, Any]) -> str:
    """The text a record carries: a Dramatiq message, or a pointer to one stored in S3.

    The one place a record's body is read; a pointer to S3 in it is resolved by the broker's
    payloads. Raises MalformedMessage when there is no text to judge.
    """
    body = record.get("body")
    if not isinstance(body, str):
        raise MalformedMessage(f"The record's body is {type(body).__name__}, not text.")
    return body


def receive_count(record: dict[str, Any]) -> int:
    """How many times SQS has delivered the record's message (1 the first time)."""
    attributes = record.get("attributes")
    raw = attributes.get("ApproximateReceiveCount") if isinstance(attributes, dict) else None
    try:
        return max(1, int(raw)) if raw is not None else 1
    except (TypeError, ValueError):
        return 1


class SQSEventHandler:
    """A Lambda function for an SQS event source: runs the records' actors, answers which failed.

    Call it as Lambda calls a handler: `handler(event, context)` returns the partial batch
    response. The context's `get_remaining_time_in_millis()` bounds every actor's time limit.

    Building it prepares the broker as a worker process is prepared (the `process_boot` hooks, which
    start TimeLimit's timer), once per broker.

    Parameters:
      broker: The broker whose actors, middleware, queues and dead-letter queues the records use.
      around_record: Makes a context manager entered around each record, as a framework wraps a
        request (Django refreshes its database connections there).
      deadline_margin: Milliseconds kept back from the invocation's deadline; a record is started
        only with more than this left, and an actor is stopped this long before the deadline.
    """

    def __init__(
        self,
        broker: SQSBroker,
        *,
        around_record: Callable[[], AbstractContextManager[Any]] | None = None,
        deadline_margin: int = DEFAULT_DEADLINE_MARGIN,
    ) -> None:
        if not isinstance(broker, SQSBroker):
            raise TypeError(f"SQSEventHandler needs an SQSBroker, not {type(broker).__name__}.")
        self.broker = broker
        self._around_record = around_record or nullcontext
        self._margin = deadline_margin
        # Counted in the broker's own stats too: both count the requests of the same boto3 client.
        self._sqs = SQSClient(client=broker.client)
        self._queues: dict[str, Queue | None] = {}
        self._time_limit = next((m for m in broker.middleware if isinstance(m, TimeLimit)), None)
        self._records = RecordBroker(broker)
        self._returned = Returned()
        # Never started: its process_message runs in the handler's own thread, one record at a time.
        self._runner = WorkerThread(
            broker=self._records,
            consumers=cast(dict[str, ConsumerThread], EveryQueue(self._returned)),
            work_queue=Untracked(),
            worker_timeout=1_000,
        )
        boot_once(broker)

    def __call__(self, event: Any, context: Any) -> _Answer:
        records = sqs_records(event)
        reported: list[str] = []
        for record in records:
            if reported and is_fifo(QueueArn.parse(record["eventSourceARN"]).name):
                reported.append(record["messageId"])  # not run: it would overtake the one before it
                continue
            if not self._handle_safely(record, context):
                reported.append(record["messageId"])
        if reported:
            logger.info("Reporting %d of %d records as failed: %r.", len(reported), len(records), reported)
        return {"batchItemFailures": [{"itemIdentifier": message_id} for message_id in reported]}

    # --- one record ------------------------------------------------------------------------------
    def _handle_safely(self, record: dict[str, Any], context: Any) -> bool:
        """Handle one record; False when it must be reported. Never raises for a record."""
        try:
            with self._around_record():
                return self._handle(record, context)
        except Exception:
            logger.exception("Could not handle record %r; reporting it.", record["messageId"])
            return False
        except BaseException as e:
            # dramatiq interrupts actors with BaseExceptions (a time limit); one that lands outside
            # the actor must still not fail the whole batch.
            if isinstance(e, KeyboardInterrupt | SystemExit):
                raise
            logger.warning("Record %r was interrupted (%r); reporting it.", record["messageId"], e)
            return False

    def _handle(self, record: dict[str, Any], context: Any) -> bool:
        queue = self._queue(record["eventSourceARN"])
        if queue is None:
            return False
        remaining = _remaining_ms(context)
        if remaining is not None and remaining <= self._margin:
            logger.warning(
                "Record %r was not started: the invocation ends in %d ms; reporting it.",
                record["messageId"],
                remaining,
            )
            return False
        taken = self._take(queue, record)
        if not isinstance(taken, tuple):
            return taken
        body, pointer = taken
        decision = decide(body, queue, now_ms=current_millis())
        if isinstance(decision, Reject):
            return self._reject(queue, record, decision, pointer)
        if isinstance(decision, Resend):
            return self._resend(queue, record, decision, pointer)
        return self._run(queue, record, decision, remaining, pointer)

    def _take(self, queue: Queue, record: dict[str, Any]) -> tuple[str, Pointer | None] | bool:
        """The body to judge (a payload fetched from S3) and its pointer; else what the record's
        outcome already is: dead-lettered (True, or False when that failed), or left for a later
        try because S3 could not hand the payload over (False)."""
        try:
            return self.broker.payloads.take(record_body(record), record.get("messageAttributes"))
        except MalformedMessage as e:
            return self._reject(queue, record, Reject(DECODE_ERROR, str(e)), None)
        except PayloadMissing as e:
            return self._reject(queue, record, Reject(type(e).__name__, str(e)), None)
        except (ConnectionClosed, PayloadError) as e:
            logger.warning(
                "Could not read the S3 payload of message %r on %r (%s); reporting it.",
                record["messageId"],
                queue.name,
                e,
            )
            return False

    def _reject(self, queue: Queue, record: dict[str, Any], reject: Reject, pointer: Pointer | None) -> bool:
        logger.error(
            "Message %r on %r cannot run (%s); moving it to the dead-letter queue.",
            record["messageId"],
            queue.name,
            reject.error,
        )
        reason = Reason.for_rejected(reject, queue)
        body = str(record.get("body", ""))
        return self._dead_letter(queue, body, reason, record["messageId"], pointer)

    def _run(
        self, queue: Queue, record: dict[str, Any], run: Run, remaining: int | None, pointer: Pointer | None
    ) -> bool:
        if run.due_at is not None:  # due within decide()'s hold: wait rather than run early
            time.sleep(max(0, run.due_at - current_millis()) / 1000)
        message = run.message
        received = SQSMessage(
            message,
            queue=queue,
            receipt_handle=str(record.get("receiptHandle", "")),
            receive_count=receive_count(record),
        )
        try:
            actor = self.broker.get_actor(message.actor_name)
        except ActorNotFound as e:
            logger.error(
                "Received message %r for undefined actor %r; moving it to the dead-letter queue.",
                message.message_id,
                message.actor_name,
            )
            received.fail()
            reason = Reason.for_failure(message, queue, e)
            return self._dead_letter(
                queue, self._failed_body(message, queue, pointer), reason, message.message_id, pointer
            )
        if queue.fifo:
            # Nothing is re-sent on a FIFO queue: SQS's delivery count is the attempt count.
            message.options["retries"] = int(message.options.get("retries", 0)) + received.receive_count - 1
        self._records.start(received, fifo=queue.fifo, time_limit=self._bound(actor, message, remaining))
        try:
            self._runner.process_message(received)
        finally:
            retry = self._records.finish()
        exception = self._returned.take(received)
        if received.failed:
            reason = Reason.for_failure(message, queue, exception)
            body = self._failed_body(message, queue, pointer)
            return self._dead_letter(queue, body, reason, message.message_id, pointer)
        if retry is not None and not retry.sent:
            return False
        # Done, or its retry sent as a message of its own (stored anew when large): the payload this
        # record pointed at is no longer needed. Deleted now, before Lambda deletes the record, as
        # nothing may run after the handler returns; were the invocation to die in between, the
        # record comes back and is dead-lettered as PayloadMissing rather than run twice.
        self._drop(pointer)
        return True

    @staticmethod
    def _failed_body(message: Message[Any], queue: Queue, pointer: Pointer | None) -> str:
        """A message that came through S3 stays there: its dead letter is the same pointer."""
        return pointer.body if pointer else failed_body(message, queue)

    def _drop(self, pointer: Pointer | None) -> None:
        if pointer is not None and self.broker.payloads.delete_payloads:
            self.broker.payloads.delete_quietly(pointer)

    def _bound(self, actor: Actor[Any, Any], message: Message[Any], remaining: int | None) -> object:
        """Shorten the message's time limit to what the invocation has left; returns what it was."""
        if remaining is None or self._time_limit is None:
            return KEEP
        limit = message.options.get("time_limit") or actor.options.get(
            "time_limit", self._time_limit.time_limit
        )
        allowed = remaining - self._margin
        if limit <= allowed:
            return KEEP
        previous = message.options.get("time_limit", ABSENT)
        message.options["time_limit"] = allowed
        return previous

    # --- what becomes of it ------------------------------------------------------------------------
    def _dead_letter(
        self, queue: Queue, body: str, reason: Reason, message_id: str, pointer: Pointer | None
    ) -> bool:
        try:
            self.broker.dead_letters.send(
                queue,
                body=body,
                reason=reason,
                message_id=message_id,
                attributes=pointer.attributes() if pointer else None,
            )
        except (ConnectionClosed, SQSBrokerError) as e:
            logger.error("Could not dead-letter message %r (%s); reporting it.", message_id, e)
            return False
        if not queue.dead_letter_url:
            self._drop(pointer)  # no dead-letter queue keeps it
        return True

    def _resend(self, queue: Queue, record: dict[str, Any], resend: Resend, pointer: Pointer | None) -> bool:
        """Send a message that is not due yet around again, for at most SQS's longest delay.

        A message that came through S3 goes around as the same pointer: its object is not stored again.
        """
        if queue.fifo:
            # A FIFO queue cannot delay one message; left in place, it comes back after its
            # visibility timeout, still in its place in the group.
            logger.info(
                "Message %r on FIFO queue %r is not due yet; reporting it.", record["messageId"], queue.name
            )
            return False
        try:
            self._sqs.call(
                "SendMessage",
                QueueUrl=queue.url,
                MessageBody=record["body"],
                DelaySeconds=seconds(resend.delay_ms),
                **({"MessageAttributes": pointer.attributes()} if pointer else {}),
            )
        except (ConnectionClosed, SQSBrokerError) as e:
            logger.warning("Could not re-delay message %r (%s); reporting it.", resend.message.message_id, e)
            return False
        logger.debug(
            "Message %r is not due yet; delayed it again by %d ms.",
            resend.message.message_id,
            resend.delay_ms,
        )
        return True

    # --- where it comes from ---------------------------------------------------------------------
    def _queue(self, arn_text: str) -> Queue | None:
        """The broker's queue a record comes from, by its ARN; None (logged) when it has none."""
        if arn_text in self._queues:
            return self._queues[arn_text]
        arn = QueueArn.parse(arn_text)
        region = self._sqs.client.meta.region_name
        name = next((q for q, sqs_name in self.broker.queues.items() if sqs_name == arn.name), None)
        queue = None
        if region != arn.region:
            logger.error(
                "Records come from SQS queue %r in %s, but the broker's client is for %s; reporting them.",
                arn.name,
                arn.region,
                region,
            )
        elif name is None:
            logger.error(
                "Records come from SQS queue %r, which no actor of this broker uses (its queues: %s); "
                "reporting them.",
                arn.name,
                ", ".join(sorted(self.broker.queues.values())) or "none",
            )
        else:
            # The URL by name and owner, from whatever endpoint the client speaks to: AWS's URLs
            # cannot be assumed (a local server, another partition).
            url = self._sqs.call("GetQueueUrl", QueueName=arn.name, QueueOwnerAWSAccountId=arn.account)
            queue = replace(self.broker.queue(name), url=str(url["QueueUrl"]))
        self._queues[arn_text] = queue
        return queue


def _remaining_ms(context: Any) -> int | None:
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    return int(remaining()) if callable(remaining) else None
