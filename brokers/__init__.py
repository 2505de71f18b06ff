"""offload's SQS broker for Dramatiq. Knows dramatiq and boto3, never Django."""

from brokers.errors import (
    BatchSendFailed,
    DeadLetteringFailed,
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
