"""SQSBroker: a dramatiq broker on Amazon SQS that batches both ends and never drops a retry."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from dramatiq.broker import Broker, MessageProxy
from dramatiq.errors import QueueJoinTimeout
from dramatiq.message import Message

from brokers.client import SQSClient
from brokers.consumer import ReceiveSettings, SQSConsumer
from brokers.deadletters import DeadLetters
from brokers.errors import BatchSendFailed
from brokers.leases import LeaseKeeper
from brokers.limits import MAX_RECEIVE_COUNT, seconds
from brokers.names import sqs_queue_name
from brokers.payloads import Payloads
from brokers.queues import Queue, Queues
from brokers.sending import DEFAULT_MESSAGE_GROUP, Pending, Sender, prepare

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
#: batch (the wait is what the observed arrival rate needs to fill it); never below 20 messages a
#: second, where each message is delivered at once (brokers.consumer explains the rule).
DEFAULT_RECEIVE_LINGER = 100
#: Receives after which SQS itself moves a message to the dead-letter queue (a RedrivePolicy on the
#: queues this broker creates). A message is received again, and counted, whenever a delivery ends
#: without its delete: a worker killed or crashed while holding it (what the backstop is for), but
#: also every graceful shutdown or consumer restart that releases prefetched messages unstarted, and
#: a retry or dead letter that could not be sent. Retries and long-delay hops are new messages and
#: start at zero. A rolling deploy can release one prefetched message once per worker it passes
#: through, so a small count would dead-letter healthy messages for restarts alone; at 10, a message
#: that kills its worker still costs at most 10 crashes (about 10 leases) before it is set aside.
DEFAULT_MAX_RECEIVE_COUNT = 10
#: How often join() looks at the queue's counters.
JOIN_POLL_S = 0.1


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
      max_receive_count: Queues this broker creates get an SQS RedrivePolicy moving a message to
        the dead-letter queue after that many receives: the backstop for messages that crash the
        worker process before it can dead-letter them itself. None gives them no RedrivePolicy.
      ack_interval: Longest wait, in milliseconds, before acked messages are deleted.
      receive_linger: Longest pause, in milliseconds, after a partly full receive, to batch the next
        (only while messages arrive at 20 a second or more).
      payload_bucket: An S3 bucket for messages larger than SQS takes: such a message is stored
        there and sent as a pointer, in the SQS Extended Client's format. None refuses them
        (MessageTooLarge). Pointers received are read either way.
      payload_threshold: Bytes (body plus attributes) above which a message goes through S3;
        None means each queue's MaximumMessageSize.
      s3_client: A boto3 S3 client for the payloads; else one on the same endpoint_url.
      delete_payloads: Delete a payload's object once its message is acked; False leaves it to
        the bucket's lifecycle rule.
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
        max_receive_count: int | None = DEFAULT_MAX_RECEIVE_COUNT,
        ack_interval: int = DEFAULT_ACK_INTERVAL,
        receive_linger: int = DEFAULT_RECEIVE_LINGER,
        payload_bucket: str | None = None,
        payload_threshold: int | None = None,
        s3_client: Any = None,
        delete_payloads: bool = True,
        **client_options: Any,
    ) -> None:
        super().__init__(middleware=middleware)
        if visibility_timeout < MIN_VISIBILITY_TIMEOUT:
            raise ValueError(
                f"visibility_timeout must be at least {MIN_VISIBILITY_TIMEOUT} ms, not {visibility_timeout}."
            )
        if not 0 < ack_interval < visibility_timeout / 2:
            raise ValueError("ack_interval must be positive and shorter than half the visibility_timeout.")
        if max_receive_count is not None and not (1 <= max_receive_count <= MAX_RECEIVE_COUNT):
            raise ValueError(f"max_receive_count must be between 1 and {MAX_RECEIVE_COUNT}.")
        if namespace:
            sqs_queue_name("q", namespace=namespace)  # fails early on an illegal namespace
        self.namespace = namespace or None
        # SQS counts visibility in whole seconds: round the lease up so it is never shorter than asked.
        self.visibility_timeout = seconds(visibility_timeout) * 1000
        self.dead_letter = dead_letter
        self.create_queues = create_queues
        self.max_receive_count = max_receive_count
        self.receive_linger = receive_linger
        self.actor_options.add("message_group_id")
        self._sqs = SQSClient(
            client=client, endpoint_url=endpoint_url, region_name=region_name, **client_options
        )
        self._queues = Queues(
            self._sqs,
            namespace=self.namespace,
            dead_letter=dead_letter,
            create_queues=create_queues,
            visibility_timeout=self.visibility_timeout,
            max_receive_count=max_receive_count,
        )
        #: Declared dramatiq queue names and the SQS queue names they map to.
        self.queues: dict[str, str] = self._queues.names
        self._payloads = Payloads(
            bucket=payload_bucket,
            threshold=payload_threshold,
            delete_payloads=delete_payloads,
            s3_client=s3_client,
            endpoint_url=endpoint_url,
            region_name=region_name,
            **client_options,
        )
        self._sender = Sender(self._sqs, self._payloads)
        self._leases = LeaseKeeper(
            self._sqs, visibility_timeout=self.visibility_timeout, ack_interval=ack_interval
        )
        self._dead_letters = DeadLetters(self._sqs, self._sender, self._prepare_again, self._payloads)
        self._receiving = ReceiveSettings(
            visibility_timeout=self.visibility_timeout, receive_linger=receive_linger
        )
        self._local = threading.local()

    # --- what operators and tests read -----------------------------------------------------------
    @property
    def client(self) -> Any:
        """The boto3 client this broker sends every request with."""
        return self._sqs.client

    @property
    def stats(self) -> dict[str, int]:
        """SQS and S3 requests made so far, by action name ("SendMessageBatch", "s3:PutObject"),
        botocore's own retries included."""
        return {**self._sqs.stats, **self._payloads.stats}

    @property
    def payloads(self) -> Payloads:
        """Stores and reads the S3 payloads of large messages, for any place that receives."""
        return self._payloads

    def queue(self, queue_name: str) -> Queue:
        """A declared queue as SQS knows it: URL, dead-letter queue URL, largest body, FIFO or not."""
        return self._queues.get(queue_name)

    @property
    def dead_letters(self) -> DeadLetters:
        """Writes dead letters with their reason and redrives them, for any place that receives."""
        return self._dead_letters

    def queue_url(self, queue_name: str) -> str:
        """The URL of a declared queue's SQS queue (created if missing and allowed)."""
        return self._queues.get(queue_name).url

    def dead_letter_queue_url(self, queue_name: str) -> str:
        """The URL of a declared queue's dead-letter queue."""
        return self._queues.dead_letter_url(self._queues.get(queue_name))

    def queue_counts(self, queue_name: str) -> dict[str, int]:
        """A queue's approximate counts as SQS reports them: visible, in flight, delayed, dead letters."""
        queue = self._queues.get(queue_name)
        counts = self._queues.counts(queue.url)
        dead = sum(self._queues.counts(queue.dead_letter_url).values()) if queue.dead_letter_url else 0
        return {**counts, "dead_letters": dead}

    # --- declaring -------------------------------------------------------------------------------
    def declare_queue(self, queue_name: str) -> None:
        """Record a queue; its SQS queue is looked up (or created) on first use, not at import."""
        if queue_name in self.queues:
            return
        self.emit_before("declare_queue", queue_name)
        self._queues.declare(queue_name)
        self.emit_after("declare_queue", queue_name)

    # --- sending ---------------------------------------------------------------------------------
    def enqueue(self, message: Message[Any], *, delay: int | None = None) -> Message[Any]:
        """Send a message, or hold it for the enclosing `batch()` block on this thread.

        Delays of any length work: SQS delays up to 15 minutes; longer ones carry an ETA and are
        sent around again until due. Raises MessageTooLarge, FifoDelayNotSupported, QueueNotFound,
        or dramatiq's ConnectionClosed when SQS cannot be reached.
        """
        try:
            queue = self._queues.get(message.queue_name)
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

    def _prepare(self, queue: Queue, message: Message[Any], delay: int | None) -> Pending:
        if isinstance(message, MessageProxy):  # a retry, handed back by the worker as it received it
            message = Message(**message.asdict())
        actor = self.actors.get(message.actor_name)
        group_id = str(
            message.options.get("message_group_id")
            or (actor.options.get("message_group_id") if actor else None)
            or DEFAULT_MESSAGE_GROUP
        )
        return prepare(queue, message, delay, group_id=group_id, offload_above=self._payloads.limit(queue))

    def _prepare_again(self, queue: Queue, message: Message[Any]) -> Pending:
        return self._prepare(queue, message, None)

    def _protect(self, message: Message[Any]) -> None:
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
    def consume(self, queue_name: str, prefetch: int = 1, timeout: int = 30_000) -> SQSConsumer:
        """A consumer of the queue whose long poll holds at most `prefetch` unacked messages."""
        return SQSConsumer(
            self._queues.get(queue_name),
            sqs=self._sqs,
            leases=self._leases,
            dead_letters=self._dead_letters,
            receiving=self._receiving,
            prefetch=prefetch,
            timeout=timeout,
            payloads=self._payloads,
        )

    # --- operating -----------------------------------------------------------------------------
    def redrive(self, queue_name: str, *, limit: int | None = None) -> int:
        """Move dead letters back to their queue to be tried afresh; returns how many moved.

        Each message goes back with its retry count reset. Bodies that are not dramatiq messages
        stay in the dead-letter queue. A message is deleted from the dead-letter queue only once
        its queue has it.
        """
        queue = self._queues.get(queue_name)
        return self._dead_letters.redrive(queue, self._queues.dead_letter_url(queue), limit=limit)

    def flush(self, queue_name: str) -> None:
        """Drop every message of a queue (visible, delayed and in flight)."""
        self._purge(self._queues.get(queue_name).url)

    def flush_all(self) -> None:
        """Drop every message of every declared queue and of their dead-letter queues."""
        for queue_name in list(self.queues):
            queue = self._queues.get(queue_name)
            self._purge(queue.url)
            if queue.dead_letter_url:
                self._purge(queue.dead_letter_url)

    def _purge(self, url: str) -> None:
        self._queues.purge(url)
        self._leases.forget_queue(url)

    def join(self, queue_name: str, *, timeout: int | None = None) -> None:
        """Wait until the queue holds no messages at all: none visible, delayed or in flight.

        SQS's counts are approximate, and a message that turns from delayed to visible between the
        counts of one answer is in neither, so the queue must read empty twice in a row.
        Raises QueueJoinTimeout when `timeout` milliseconds pass first.
        """
        queue = self._queues.get(queue_name)
        deadline = None if timeout is None else time.monotonic() + timeout / 1000
        empty_reads = 0
        while True:
            empty = self._leases.pending(queue.url) == 0 and not any(self._queues.counts(queue.url).values())
            empty_reads = empty_reads + 1 if empty else 0
            if empty_reads == 2:
                return
            if deadline is not None and time.monotonic() >= deadline:
                raise QueueJoinTimeout(queue_name)
            time.sleep(JOIN_POLL_S)

    def close(self) -> None:
        """Delete acked messages still waiting for their batch, then their payloads; stop the lease keeper."""
        self._leases.close()
        self._payloads.close()
