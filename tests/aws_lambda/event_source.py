"""A small stand-in for Lambda's SQS event source mapping, receiving from the test SQS server.

It does what the mapping does with ReportBatchItemFailures on: receive a batch, invoke the function
with an event shaped like Lambda's, delete every record the answer does not name, and leave the
named ones to come back after their visibility timeout. An answer naming an id that was not in the
batch is Lambda's "complete failure" (nothing is deleted); here it fails the test instead, since the
handler must never give one.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tests.aws_lambda.events import LambdaContext

Handler = Callable[[dict[str, Any], Any], dict[str, Any]]


@dataclass
class Invocation:
    """One invocation: the batch's message ids, those the answer reported, and those deleted."""

    batch: list[str]
    reported: list[str]
    deleted: list[str] = field(default_factory=list)


class EventSourceMapping:
    """Feeds one queue's messages to a handler, as Lambda's event source does.

    Parameters:
      client: A boto3 SQS client of the test server.
      queue_url: The queue to receive from.
      handler: The function, called as Lambda calls it: handler(event, context).
      batch_size: Most records per invocation (Lambda's BatchSize; at most 10 in one receive).
      visibility_timeout_s: How long a received batch stays hidden (the queue's visibility timeout).
      context: Makes the context of each invocation.
    """

    def __init__(
        self,
        client: Any,
        queue_url: str,
        handler: Handler,
        *,
        batch_size: int = 10,
        visibility_timeout_s: int = 60,
        context: Callable[[], Any] = LambdaContext,
    ) -> None:
        self.client = client
        self.queue_url = queue_url
        self.handler = handler
        self.batch_size = batch_size
        self.visibility_timeout_s = visibility_timeout_s
        self.context = context
        attributes = client.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])
        self.queue_arn = attributes["Attributes"]["QueueArn"]
        self.region = self.queue_arn.split(":")[3]
        self.invocations: list[Invocation] = []

    def invoke_once(self, *, wait_s: int = 0, crash: bool = False) -> Invocation | None:
        """Receive one batch (long-polling up to wait_s) and invoke the handler with it.

        With crash=True the container dies after the handler returns and before Lambda deletes
        anything: every record becomes visible again (at once here, after its timeout on AWS).
        Returns None when nothing was received.
        """
        received = self.client.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=self.batch_size,
            WaitTimeSeconds=wait_s,
            VisibilityTimeout=self.visibility_timeout_s,
            MessageSystemAttributeNames=["All"],
            MessageAttributeNames=["All"],
        ).get("Messages", [])
        if not received:
            return None
        event = {"Records": [self.record(message) for message in received]}
        answer = self.handler(event, self.context())
        batch = [message["MessageId"] for message in received]
        reported = [item["itemIdentifier"] for item in (answer or {}).get("batchItemFailures") or []]
        unknown = set(reported) - set(batch)
        assert not unknown, f"The answer names ids that were not in the batch: {sorted(unknown)}"
        invocation = Invocation(batch, reported)
        self.invocations.append(invocation)
        handles = {message["MessageId"]: message["ReceiptHandle"] for message in received}
        if crash:
            self._entries("change_message_visibility_batch", handles, VisibilityTimeout=0)
            return invocation
        done = {message_id: handle for message_id, handle in handles.items() if message_id not in reported}
        self._entries("delete_message_batch", done)
        invocation.deleted = list(done)
        return invocation

    def run_until_idle(self, *, wait_s: int = 0, limit: int = 20) -> list[Invocation]:
        """Invoke the handler until a receive (long-polling up to wait_s) comes back empty."""
        invocations = []
        for _ in range(limit):
            invocation = self.invoke_once(wait_s=wait_s)
            if invocation is None:
                return invocations
            invocations.append(invocation)
        raise AssertionError(f"The queue was still not idle after {limit} invocations.")

    def record(self, message: dict[str, Any]) -> dict[str, Any]:
        """A received message as a record of Lambda's SQS event (camelCase, string-valued attributes)."""
        record: dict[str, Any] = {
            "messageId": message["MessageId"],
            "receiptHandle": message["ReceiptHandle"],
            "body": message["Body"],
            "attributes": {name: str(value) for name, value in message.get("Attributes", {}).items()},
            "messageAttributes": {
                name: _attribute(value) for name, value in message.get("MessageAttributes", {}).items()
            },
            "md5OfBody": message.get("MD5OfBody") or hashlib.md5(message["Body"].encode("utf-8")).hexdigest(),  # noqa: S324 (SQS's checksum)
        }
        if "MD5OfMessageAttributes" in message:
            record["md5OfMessageAttributes"] = message["MD5OfMessageAttributes"]
        record.update(eventSource="aws:sqs", eventSourceARN=self.queue_arn, awsRegion=self.region)
        return record

    def _entries(self, action: str, handles: dict[str, str], **extra: Any) -> None:
        items = list(handles.values())
        for start in range(0, len(items), 10):
            entries = [
                {"Id": str(i), "ReceiptHandle": handle, **extra}
                for i, handle in enumerate(items[start : start + 10])
            ]
            response = getattr(self.client, action)(QueueUrl=self.queue_url, Entries=entries)
            assert not response.get("Failed"), response["Failed"]


def _attribute(value: dict[str, Any]) -> dict[str, Any]:
    """A message attribute as Lambda passes it: camelCase, binary values base64-encoded."""
    attribute: dict[str, Any] = {
        "stringListValues": value.get("StringListValues", []),
        "binaryListValues": [base64.b64encode(v).decode("ascii") for v in value.get("BinaryListValues", [])],
        "dataType": value["DataType"],
    }
    if "StringValue" in value:
        attribute["stringValue"] = value["StringValue"]
    if "BinaryValue" in value:
        attribute["binaryValue"] = base64.b64encode(value["BinaryValue"]).decode("ascii")
    return attribute
