"""The broker's queues: dramatiq names to SQS queues, looked up (or created) once, on first use."""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass
from typing import Any

from dramatiq.common import q_name
from dramatiq.errors import QueueNotFound

from brokers.client import SQSClient
from brokers.errors import InvalidQueueName, QueueDoesNotExist, SQSBrokerError, SQSRequestFailed
from brokers.limits import (
    DEFAULT_MAX_MESSAGE_BYTES,
    MAX_RECEIVE_MESSAGES,
    MAX_RETENTION_MS,
    chunks,
    seconds,
)
from brokers.names import is_fifo, sqs_queue_name

logger = logging.getLogger(__name__)

#: What `counts()` reports, by the SQS attribute it comes from.
COUNTS = {
    "visible": "ApproximateNumberOfMessages",
    "in_flight": "ApproximateNumberOfMessagesNotVisible",
    "delayed": "ApproximateNumberOfMessagesDelayed",
}
_COUNT_ATTRIBUTES = list(COUNTS.values())
_EXISTS_CODES = {"QueueAlreadyExists", "QueueNameExists", "AWS.SimpleQueueService.QueueNameExists"}
_PURGE_IN_PROGRESS = {"PurgeQueueInProgress", "AWS.SimpleQueueService.PurgeQueueInProgress"}


@dataclass(frozen=True)
class Queue:
    """A declared queue as SQS knows it: where to send, where its dead letters go, what it accepts."""

    name: str
    url: str
    dead_letter_url: str | None
    max_size: int
    fifo: bool


class Queues:
    """The declared queues of one broker; thread-safe.

    Parameters:
      sqs: The client every request goes through.
      namespace: Prefix of every SQS queue name.
      dead_letter: Give each queue a dead-letter queue ("<name>-dlq").
      create_queues: Create missing queues; when False, never send CreateQueue.
      visibility_timeout: The VisibilityTimeout of the queues it creates, in milliseconds.
      max_receive_count: When set, the queues it creates get a RedrivePolicy with it.
    """

    def __init__(
        self,
        sqs: SQSClient,
        *,
        namespace: str | None,
        dead_letter: bool,
        create_queues: bool,
        visibility_timeout: int,
        max_receive_count: int | None,
    ) -> None:
        self._sqs = sqs
        self.namespace = namespace
        self.dead_letter = dead_letter
        self.create_queues = create_queues
        self.visibility_timeout = visibility_timeout
        self.max_receive_count = max_receive_count
        #: Declared dramatiq queue names and their SQS names.
        self.names: dict[str, str] = {}
        self._resolved: dict[str, Queue] = {}
        self._lock = threading.Lock()

    def declare(self, queue_name: str) -> None:
        """Record a queue's SQS name; raises InvalidQueueName when SQS could not hold it."""
        sqs_name = sqs_queue_name(queue_name, namespace=self.namespace)
        if self.dead_letter:
            sqs_queue_name(queue_name, namespace=self.namespace, dead_letter=True)
        for other, other_sqs_name in self.names.items():
            if other_sqs_name == sqs_name:
                raise InvalidQueueName(
                    f"Queues {other!r} and {queue_name!r} both map to SQS queue {sqs_name!r}."
                )
        self.names[queue_name] = sqs_name

    def get(self, queue_name: str) -> Queue:
        """A declared queue, looked up (or created) in SQS on first use; raises QueueNotFound."""
        queue_name = q_name(queue_name)
        queue = self._resolved.get(queue_name)
        if queue is not None:
            return queue
        if queue_name not in self.names:
            raise QueueNotFound(queue_name)
        with self._lock:
            queue = self._resolved.get(queue_name)
            if queue is None:
                queue = self._resolved[queue_name] = self._set_up(queue_name)
        return queue

    def dead_letter_url(self, queue: Queue) -> str:
        """The queue's dead-letter queue URL; raises SQSBrokerError when it has none."""
        if queue.dead_letter_url is None:
            raise SQSBrokerError(
                f"Queue {queue.name!r} has no dead-letter queue: the broker has dead_letter=False."
            )
        return queue.dead_letter_url

    # --- what SQS reports -----------------------------------------------------------------------
    def counts(self, url: str) -> dict[str, int]:
        """One SQS queue's approximate counts: visible, in flight, delayed."""
        attributes = self._sqs.call("GetQueueAttributes", QueueUrl=url, AttributeNames=_COUNT_ATTRIBUTES)
        return {key: int(attributes["Attributes"].get(name, 0)) for key, name in COUNTS.items()}

    def purge(self, url: str) -> None:
        """Drop every message of one SQS queue."""
        try:
            self._sqs.call("PurgeQueue", QueueUrl=url)
        except SQSRequestFailed as e:
            if e.code not in _PURGE_IN_PROGRESS:
                raise
            # SQS allows one purge a minute per queue; drain what is visible instead.
            while messages := self._sqs.call(
                "ReceiveMessage", QueueUrl=url, MaxNumberOfMessages=MAX_RECEIVE_MESSAGES, WaitTimeSeconds=0
            ).get("Messages"):
                for chunk in chunks(messages):
                    entries = [
                        {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(chunk)
                    ]
                    self._sqs.call("DeleteMessageBatch", QueueUrl=url, Entries=entries)

    # --- setting up -----------------------------------------------------------------------------
    def _set_up(self, queue_name: str) -> Queue:
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
        url = self._get_or_create(queue_name, self.names[queue_name], fifo=fifo, redrive=redrive)
        attributes = self._sqs.call("GetQueueAttributes", QueueUrl=url, AttributeNames=["MaximumMessageSize"])
        max_size = int(attributes.get("Attributes", {}).get("MaximumMessageSize", DEFAULT_MAX_MESSAGE_BYTES))
        return Queue(queue_name, url, dead_letter_url, max_size, fifo)

    def _get_or_create(
        self, queue_name: str, sqs_name: str, *, fifo: bool, redrive: dict[str, Any] | None = None
    ) -> str:
        try:
            return self._url(sqs_name)
        except QueueDoesNotExist:
            if not self.create_queues:
                raise QueueDoesNotExist(
                    f"SQS queue {sqs_name!r} (for queue {queue_name!r}) does not exist, and this broker "
                    "may not create queues (create_queues=False): create it first."
                ) from None
        attributes = {
            "MessageRetentionPeriod": str(seconds(MAX_RETENTION_MS)),
            "VisibilityTimeout": str(seconds(self.visibility_timeout)),
        }
        if fifo:
            attributes["FifoQueue"] = "true"
        if redrive:
            attributes["RedrivePolicy"] = json.dumps(redrive)
        try:
            url = str(self._sqs.call("CreateQueue", QueueName=sqs_name, Attributes=attributes)["QueueUrl"])
        except SQSRequestFailed as e:
            if e.code not in _EXISTS_CODES:
                raise
            return self._url(sqs_name)
        logger.info("Created SQS queue %r.", sqs_name)
        return url

    def _url(self, sqs_name: str) -> str:
        return str(self._sqs.call("GetQueueUrl", QueueName=sqs_name)["QueueUrl"])
