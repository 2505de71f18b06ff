from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import boto3
import dramatiq
import pytest
from django.test import Client

from tests.aws_lambda.events import KINDS, host
from tests.brokers.conftest import receive_all
from tests.web.images.conftest import owner

__all__ = ["owner"]


@pytest.fixture
def lambda_hosts(settings: Any) -> None:
    """The site answers the host names of the samples, as a deployment's ALLOWED_HOSTS lets it."""
    settings.ALLOWED_HOSTS = ["testserver", *(host(kind) for kind in KINDS)]


@pytest.fixture
def s3(sqs_endpoint: str) -> Any:
    """A client of the test server's S3 (the local server speaks S3 as well as SQS)."""
    return boto3.client("s3", endpoint_url=sqs_endpoint, region_name="us-east-1")


@pytest.fixture
def payload_bucket(s3: Any, namespace: str) -> str:
    """A bucket of this test's own for message bodies larger than SQS takes (SQS_PAYLOAD_BUCKET)."""
    bucket = f"{namespace}-payloads"
    s3.create_bucket(Bucket=bucket)
    return bucket


@pytest.fixture
def media_bucket(s3: Any, sqs_endpoint: str, namespace: str, settings: Any) -> Iterator[str]:
    """Uploads go to an S3 bucket of this test's own, as MEDIA_S3_BUCKET makes them on Lambda."""
    bucket = f"{namespace}-media"
    s3.create_bucket(Bucket=bucket)
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "storages.backends.s3.S3Storage",
            "OPTIONS": {
                "bucket_name": bucket,
                "location": "media",
                "endpoint_url": sqs_endpoint,
                "region_name": "us-east-1",
                "addressing_style": "path",
                "signature_version": "s3v4",
                "default_acl": None,
            },
        },
    }
    yield bucket
    for item in s3.list_objects_v2(Bucket=bucket).get("Contents", []):
        s3.delete_object(Bucket=bucket, Key=item["Key"])
    s3.delete_bucket(Bucket=bucket)


@pytest.fixture
def session_cookie(owner: Any) -> str:
    """The session cookie of the logged-in owner, to send in events as a browser would."""
    client = Client()
    client.force_login(owner)
    return client.cookies["sessionid"].value


@dataclass
class Actors:
    """Actors of this test's broker that record each run: `ran` lists what they were called with."""

    ran: list[str] = field(default_factory=list)


@pytest.fixture
def actors(broker: Any) -> Actors:
    """On the test broker: `flaky` always fails (2 retries, 1.5-4 s backoff), `ordered` runs on a FIFO
    queue and fails for "bad", `slow` works until it is stopped."""
    seen = Actors()

    def flaky(label: str) -> None:
        seen.ran.append(label)
        raise RuntimeError(f"{label} could not be done")

    def ordered(label: str) -> None:
        seen.ran.append(label)
        if label.startswith("bad"):
            raise RuntimeError(f"{label} could not be done")

    def slow(label: str) -> None:
        seen.ran.append(label)
        while True:  # work that takes longer than any invocation allows; stopped by the time limit
            time.sleep(0.05)

    # A first backoff of 1.5-3 s: long enough to see the retry delayed, short enough to wait for.
    dramatiq.actor(flaky, broker=broker, max_retries=2, min_backoff=3_000, max_backoff=4_000)
    dramatiq.actor(ordered, broker=broker, queue_name="orders.fifo", max_retries=2)
    dramatiq.actor(slow, broker=broker, max_retries=1)
    return seen


def queue_arn(broker: Any, queue_name: str = "default") -> str:
    """The ARN Lambda's event source names the broker's queue by."""
    url = broker.queue_url(queue_name)
    return broker.client.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]


def dead_letters(broker: Any, queue_name: str = "default") -> list[tuple[str, dict[str, str]]]:
    """Each dead letter of the queue as (body, reason), the reason's attributes less offload.failed_at."""
    found = []
    for raw in receive_all(broker.client, broker.dead_letter_queue_url(queue_name)):
        reason = {
            name: value["StringValue"]
            for name, value in raw.get("MessageAttributes", {}).items()
            if name != "offload.failed_at"
        }
        found.append((raw["Body"], reason))
    return found
