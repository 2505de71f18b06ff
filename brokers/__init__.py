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
    "DeadLetter",
    "DeadLetterNotFound",
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
