"""The errors brokers/ raises. Connection trouble is dramatiq's own ConnectionClosed instead, so the
worker restarts its consumers and retries acks as it does for every broker."""

from __future__ import annotations

from dataclasses import dataclass

from dramatiq.errors import BrokerError, QueueNotFound


class SQSBrokerError(BrokerError):
    """Base class of every error the SQS broker raises besides dramatiq's own."""


class InvalidQueueName(SQSBrokerError, ValueError):
    """Raised when a dramatiq queue name cannot become a legal SQS queue name."""


class QueueDoesNotExist(SQSBrokerError, QueueNotFound):
    """Raised when an SQS queue is missing and the broker may not create it (create_queues=False)."""


class MessageTooLarge(SQSBrokerError, ValueError):
    """Raised at enqueue when a message exceeds its queue's MaximumMessageSize and no bucket takes it."""


class PayloadError(SQSBrokerError):
    """Raised when S3 refuses to store, read or delete the payload of a message sent through S3."""

    def __init__(self, action: str, code: str, detail: str) -> None:
        super().__init__(f"S3 {action} failed: {code}: {detail}")
        self.action = action
        self.code = code
        self.detail = detail


class PayloadMissing(PayloadError):
    """Raised when a message points to an S3 object (or bucket) that does not exist."""


class FifoDelayNotSupported(SQSBrokerError, ValueError):
    """Raised when a message for a FIFO queue asks for a delay, which SQS FIFO queues reject per message."""


class MalformedMessage(SQSBrokerError, ValueError):
    """Raised when a received body is not a well-formed dramatiq message; the text says what is wrong."""

    def __init__(self, message: str, *, actor: str = "") -> None:
        super().__init__(message)
        #: The actor the body names, when it names one.
        self.actor = actor


class NotAnSQSEvent(SQSBrokerError, ValueError):
    """Raised by the SQS event handler for an event that is not a batch of SQS records (a function
    wired to the wrong source); the text says what the event is instead."""


class PollerDied(SQSBrokerError):
    """Raised by a consumer whose background receive stopped on something other than an error, so the
    worker restarts the consumer instead of waiting for messages that would never come."""


class DeadLetteringFailed(SQSBrokerError):
    """Raised by nack when a message could not be written to its dead-letter queue (it is not deleted)."""


class SQSRequestFailed(SQSBrokerError):
    """Raised when SQS answers a request with an error that has no more specific type here."""

    def __init__(self, action: str, code: str, detail: str) -> None:
        super().__init__(f"SQS {action} failed: {code}: {detail}")
        self.action = action
        self.code = code
        self.detail = detail


@dataclass(frozen=True)
class FailedEntry:
    """One message a batch send could not deliver, and why."""

    message_id: str
    queue_name: str
    code: str
    reason: str


class BatchSendFailed(SQSBrokerError):
    """Raised when `broker.batch()` exits with messages SQS did not accept; names exactly those."""

    def __init__(self, failed: list[FailedEntry], sent: int) -> None:
        names = ", ".join(f"{f.message_id!r} ({f.queue_name}: {f.code})" for f in failed[:10])
        more = f" and {len(failed) - 10} more" if len(failed) > 10 else ""
        super().__init__(f"{len(failed)} of {len(failed) + sent} messages were not sent: {names}{more}.")
        self.failed = failed
        self.sent = sent


class DeadLetterNotFound(SQSBrokerError, LookupError):
    """Raised when a dead letter named by its id is not in its dead-letter queue (or is hidden right now)."""
