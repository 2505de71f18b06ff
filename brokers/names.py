"""Mapping dramatiq queue names to legal SQS queue names."""

from __future__ import annotations

import re

from brokers.errors import InvalidQueueName
from brokers.limits import MAX_QUEUE_NAME_LENGTH

#: FIFO queue names end in this (sqs-quotas-queues).
FIFO_SUFFIX = ".fifo"
#: The suffix of each queue's dead-letter queue (before ".fifo" for FIFO queues).
DEAD_LETTER_SUFFIX = "-dlq"

_LEGAL = re.compile(r"[A-Za-z0-9_-]+")
_DRAMATIQ_SUFFIXES = {".DQ": "-DQ", ".XQ": "-XQ"}


def is_fifo(queue_name: str) -> bool:
    return queue_name.endswith(FIFO_SUFFIX)


def sqs_queue_name(queue_name: str, *, namespace: str | None = None, dead_letter: bool = False) -> str:
    """The SQS name of a dramatiq queue: namespace-prefixed, dots made hyphens, ".fifo" kept last.

    >>> sqs_queue_name("default.DQ", namespace="shop")
    'shop-default-DQ'
    >>> sqs_queue_name("orders.fifo", namespace="shop", dead_letter=True)
    'shop-orders-dlq.fifo'
    """
    base = queue_name
    suffix = ""
    for dramatiq_suffix, legal in _DRAMATIQ_SUFFIXES.items():
        if base.endswith(dramatiq_suffix):
            base, suffix = base[: -len(dramatiq_suffix)], legal
            break
    fifo = is_fifo(base)
    if fifo:
        base = base[: -len(FIFO_SUFFIX)]
    name = base.replace(".", "-") + suffix
    if namespace:
        name = f"{namespace}-{name}"
    if dead_letter:
        name += DEAD_LETTER_SUFFIX
    if fifo:
        name += FIFO_SUFFIX
    stem = name[: -len(FIFO_SUFFIX)] if fifo else name
    if not _LEGAL.fullmatch(stem):
        raise InvalidQueueName(
            f"Queue {queue_name!r} (namespace {namespace!r}) maps to {name!r}, but SQS queue names may "
            "only hold letters, digits, '-' and '_'."
        )
    if len(name) > MAX_QUEUE_NAME_LENGTH:
        raise InvalidQueueName(
            f"Queue {queue_name!r} (namespace {namespace!r}) maps to {name!r}, which is {len(name)} "
            f"characters; SQS allows at most {MAX_QUEUE_NAME_LENGTH}. Use a shorter name or namespace."
        )
    return name
