"""offload's SQS broker for Dramatiq. Knows dramatiq and boto3, never Django."""

from brokers.deadletters import DeadLetter
from brokers.errors import (
    BatchSendFailed,
    DeadLetteringFailed,
    DeadLetterNotFound,
    FailedEntry,
    FifoDelayNotSupported,
    InvalidQueueName,
    MalformedMessage,
    MessageTooLarge,
    PollerDied,
    QueueDoesNotExist,
    SQSBrokerError,
    SQSRequestFailed,
)
from brokers.sqs import SQSBroker

__all__ = [
    "BatchSendFailed",
    "DeadLetter",
    "DeadLetterNotFound",
    "DeadLetteringFailed",
    "FailedEntry",
    "FifoDelayNotSupported",
    "InvalidQueueName",
    "MalformedMessage",
    "MessageTooLarge",
    "PollerDied",
    "QueueDoesNotExist",
    "SQSBroker",
    "SQSBrokerError",
    "SQSRequestFailed",
]
