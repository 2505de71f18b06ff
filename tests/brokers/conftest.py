"""Fixtures for testing the broker against a real SQS server over HTTP."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import boto3
import dramatiq
import pytest
from dramatiq.middleware import default_middleware

from brokers import SQSBroker
from tests.waiting import wait_until as wait_until  # the tests here import it from this module


@pytest.fixture
def sqs(sqs_endpoint: str) -> Any:
    """A plain boto3 client on the same server, to look at queues the way an operator would."""
    return boto3.client("sqs", endpoint_url=sqs_endpoint, region_name="us-east-1")


@pytest.fixture
def make_broker(sqs_endpoint: str, namespace: str) -> Iterator[Callable[..., SQSBroker]]:
    """Builds SQSBrokers on the test server in this test's namespace; closes them afterwards."""
    made: list[SQSBroker] = []

    def make(**options: Any) -> SQSBroker:
        options.setdefault("namespace", namespace)
        options.setdefault("middleware", [m() for m in default_middleware])
        broker = SQSBroker(endpoint_url=sqs_endpoint, region_name="us-east-1", **options)
        made.append(broker)
        return broker

    yield make
    for broker in made:
        broker.close()


@pytest.fixture
def sqs_broker(make_broker: Callable[..., SQSBroker]) -> SQSBroker:
    return make_broker()


@pytest.fixture
def start_worker() -> Iterator[Callable[..., dramatiq.Worker]]:
    """Starts dramatiq Workers; every one is stopped at the end of the test."""
    workers: list[dramatiq.Worker] = []

    def start(broker: dramatiq.Broker, threads: int = 4) -> dramatiq.Worker:
        worker = dramatiq.Worker(broker, worker_threads=threads, worker_timeout=100)
        worker.start()
        workers.append(worker)
        return worker

    yield start
    for worker in workers:
        worker.stop()


def queue_counts(sqs: Any, url: str) -> dict[str, int]:
    names = [
        "ApproximateNumberOfMessages",
        "ApproximateNumberOfMessagesNotVisible",
        "ApproximateNumberOfMessagesDelayed",
    ]
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=names)["Attributes"]
    return {
        "visible": int(attributes["ApproximateNumberOfMessages"]),
        "in_flight": int(attributes["ApproximateNumberOfMessagesNotVisible"]),
        "delayed": int(attributes["ApproximateNumberOfMessagesDelayed"]),
    }


def receive_all(sqs: Any, url: str, **options: Any) -> list[dict[str, Any]]:
    """Everything visible on a queue right now (received, so hidden for the default visibility)."""
    messages: list[dict[str, Any]] = []
    while batch := sqs.receive_message(
        QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0, MessageAttributeNames=["All"], **options
    ).get("Messages", []):
        messages += batch
    return messages


@pytest.fixture
def s3(sqs_endpoint: str) -> Any:
    """A plain boto3 S3 client on the same server, to look at payloads the way an operator would."""
    return boto3.client("s3", endpoint_url=sqs_endpoint, region_name="us-east-1")


@pytest.fixture
def bucket(s3: Any, namespace: str) -> str:
    """An empty S3 bucket of this test's own for message payloads."""
    name = f"{namespace}-payloads"
    s3.create_bucket(Bucket=name)
    return name


def object_keys(s3: Any, bucket: str) -> list[str]:
    """The keys of every object in the bucket now."""
    return sorted(item["Key"] for item in s3.list_objects_v2(Bucket=bucket).get("Contents", []))
