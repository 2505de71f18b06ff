"""AWS's SQS Extended Client for Python, driven from the command line for the interoperability tests.

    python -m tests.brokers.extended_client send QUEUE_URL BUCKET < body
    python -m tests.brokers.extended_client receive QUEUE_URL

It runs in a process of its own because importing the library replaces boto3's Session for the
whole process. Its S3 client ignores the SQS endpoint: point it with AWS_ENDPOINT_URL_S3.
`receive` prints the message as the library hands it over (body resolved from S3), as JSON, and
then deletes it through the library, with the receipt handle the library rewrote.
"""

from __future__ import annotations

import json
import os
import sys


def main(argv: list[str]) -> int:
    import boto3
    import sqs_extended_client  # noqa: F401 - importing it patches boto3

    action, queue_url = argv[0], argv[1]
    sqs = boto3.client("sqs", endpoint_url=os.environ["SQS_ENDPOINT_URL"])
    if action == "send":
        sqs.large_payload_support = argv[2]
        response = sqs.send_message(QueueUrl=queue_url, MessageBody=sys.stdin.read())
        print(json.dumps({"MessageId": response["MessageId"]}))
        return 0
    [message] = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=1, WaitTimeSeconds=5)["Messages"]
    sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
    print(json.dumps({"Body": message["Body"], "MessageAttributes": message.get("MessageAttributes", {})}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
