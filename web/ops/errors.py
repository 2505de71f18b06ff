"""The broker's typed errors in words an operator can act on, for /ops/ and the records it shows."""

from __future__ import annotations

from dramatiq.errors import ConnectionClosed

from brokers import (
    BatchSendFailed,
    DeadLetterNotFound,
    MalformedMessage,
    QueueDoesNotExist,
    SQSBrokerError,
    SQSRequestFailed,
)
from brokers.deadletters import PEEK_VISIBILITY_MS
from brokers.limits import seconds


def describe_broker_error(error: BaseException) -> str:
    """One or two sentences for /ops/ about what went wrong talking to SQS, and what to do."""
    if isinstance(error, ConnectionClosed):
        return (
            "SQS (or S3, for a message stored there) could not be reached. Nothing was changed; "
            "try again once it answers."
        )
    if isinstance(error, QueueDoesNotExist):
        return (
            "The queue does not exist in SQS, and this deployment may not create queues "
            "(SQS_CREATE_QUEUES is false): create it first."
        )
    if isinstance(error, DeadLetterNotFound):
        return (
            "That dead letter is no longer in the dead-letter queue: it was retried or deleted, or someone "
            "else is looking at it right now (then it is back within "
            f"{seconds(PEEK_VISIBILITY_MS)} seconds)."
        )
    if isinstance(error, MalformedMessage):
        return str(error)
    if isinstance(error, BatchSendFailed):
        return (
            f"SQS did not take {len(error.failed)} message(s) back ({error.failed[0].code}: "
            f"{error.failed[0].reason}); they stay dead letters. {error.sent} were sent back."
        )
    if isinstance(error, SQSRequestFailed):
        return f"SQS refused the request ({error.action}: {error.code}). {error.detail}"
    if isinstance(error, SQSBrokerError):
        return str(error)
    return f"Unexpected error: {type(error).__name__}."
