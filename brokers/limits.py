"""SQS's limits, each defined once with the AWS page it comes from, and the one way to cut batches.

Durations are in milliseconds, as everywhere in brokers/; SQS counts them in whole seconds, so
`seconds()` converts at the boto3 call, rounding up so that nothing is ever shorter than asked.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator

#: Entries per batch request: SendMessageBatch, DeleteMessageBatch, ChangeMessageVisibilityBatch
#: (sqs-batch-api-actions).
MAX_BATCH_ENTRIES = 10
#: A SendMessageBatch carries at most this many bytes of bodies in total (sqs-batch-api-actions).
MAX_BATCH_BYTES = 1_048_576
#: Most messages one ReceiveMessage returns (MaxNumberOfMessages, sqs-api ReceiveMessage).
MAX_RECEIVE_MESSAGES = 10
#: Longest wait of a long poll (WaitTimeSeconds, sqs-short-and-long-polling).
MAX_LONG_POLL_MS = 20_000
#: SQS rejects DelaySeconds above this (sqs-message-timers).
MAX_DELAY_MS = 15 * 60 * 1000
#: SQS never keeps a message invisible longer than 12 hours after it was received (sqs-visibility-timeout).
MAX_VISIBILITY_MS = 12 * 60 * 60 * 1000
#: The longest retention SQS allows: 14 days (sqs-quotas-messages).
MAX_RETENTION_MS = 14 * 24 * 60 * 60 * 1000
#: A queue's MaximumMessageSize when it reports none: SQS's default (sqs-quotas-messages).
DEFAULT_MAX_MESSAGE_BYTES = 262_144
#: The largest maxReceiveCount a RedrivePolicy takes (sqs-dead-letter-queues).
MAX_RECEIVE_COUNT = 1_000
#: SQS queue names: 1-80 characters; a FIFO name's ".fifo" counts towards the 80 (sqs-quotas-queues).
MAX_QUEUE_NAME_LENGTH = 80


def seconds(ms: float) -> int:
    """A duration in milliseconds as the whole seconds SQS takes, rounded up."""
    return math.ceil(ms / 1000)


def chunks[T](items: Iterable[T], *, size: Callable[[T], int] | None = None) -> Iterator[list[T]]:
    """Cut items into batch requests: at most 10 entries each and, when `size` is given, 1 MiB.

    An item larger than 1 MiB on its own still gets a chunk (SQS then refuses that entry alone).
    """
    chunk: list[T] = []
    total = 0
    for item in items:
        item_size = size(item) if size else 0
        if chunk and (len(chunk) == MAX_BATCH_ENTRIES or total + item_size > MAX_BATCH_BYTES):
            yield chunk
            chunk, total = [], 0
        chunk.append(item)
        total += item_size
    if chunk:
        yield chunk
