"""offload's SQS broker for Dramatiq. Knows dramatiq and boto3, never Django."""

from brokers.errors import (
    BatchSendFailed,
    DeadLetteringFailed,
    FailedEntry,
    FifoDelayNotSupported,
    InvalidQueueName,
    MalformedMessage,
    MessageTooLarge,
    NotAnSQSEvent,
    PollerDied,
    QueueDoesNotExist,
    SQSBrokerError,
    SQSRequestFailed,
)
from brokers.sqs import SQSBroker
from brokers.sqs_events import SQSEventHandler

__all__ = [
    "BatchSendFailed",
    "DeadLetteringFailed",
    "FailedEntry",
    "FifoDelayNotSupported",
    "InvalidQueueName",
    "MalformedMessage",
    "MessageTooLarge",
    "NotAnSQSEvent",
    "PollerDied",
    "QueueDoesNotExist",
    "SQSBroker",
    "SQSBrokerError",
    "SQSEventHandler",
    "SQSRequestFailed",
]
