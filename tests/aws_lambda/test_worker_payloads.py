"""Messages stored in S3 (Extended Client pointers) through worker_handler, as through the worker:
the payload is read for the actor, deleted once the record is done, and kept by its dead letter."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator

import dramatiq
import pytest

from brokers.payloads import POINTER_CLASS
from brokers.sqs import SQSBroker
from tests.aws_lambda.conftest import dead_letters
from tests.aws_lambda.event_source import EventSourceMapping
from tests.brokers.conftest import object_keys, queue_counts
from tests.conftest import project_actors_on
from web.aws_lambda import worker_handler

MiB = 1024 * 1024


@pytest.fixture
def broker(sqs_endpoint: str, namespace: str, payload_bucket: str) -> Iterator[SQSBroker]:
    """The project's broker with a payload bucket, as SQS_PAYLOAD_BUCKET configures it."""
    with project_actors_on(sqs_endpoint, namespace, payload_bucket=payload_bucket) as test_broker:
        yield test_broker


@pytest.fixture
def digests(broker: SQSBroker) -> list[str]:
    """`measure` records the digest of each blob it gets; `reject` fails at once (no retries)."""
    seen: list[str] = []

    def measure(blob: str) -> None:
        seen.append(hashlib.sha256(blob.encode()).hexdigest())

    def reject(blob: str) -> None:
        seen.append(hashlib.sha256(blob.encode()).hexdigest())
        raise ValueError("this blob is not wanted")

    dramatiq.actor(measure, broker=broker)
    dramatiq.actor(reject, broker=broker, max_retries=0)
    return seen


@pytest.fixture
def mapping(broker: SQSBroker) -> EventSourceMapping:
    return EventSourceMapping(broker.client, broker.queue_url("default"), worker_handler)


def blob(size: int) -> str:
    return ("naïve 🚀 " + "0123456789abcdef" * (size // 16))[:size]


def test_a_large_message_runs_with_its_whole_payload_and_the_object_goes_once_the_record_is_done(
    broker, digests, mapping, s3, payload_bucket
):
    body = blob(2 * MiB)
    broker.get_actor("measure").send(body)
    assert len(object_keys(s3, payload_bucket)) == 1, "the message went through S3"

    [invocation] = mapping.run_until_idle()

    assert invocation.reported == []
    assert digests == [hashlib.sha256(body.encode()).hexdigest()]
    assert object_keys(s3, payload_bucket) == []
    assert set(queue_counts(broker.client, broker.queue_url("default")).values()) == {0}


def test_a_failed_large_message_is_dead_lettered_as_its_pointer_and_its_object_stays(
    broker, digests, mapping, s3, payload_bucket
):
    broker.get_actor("reject").send(blob(2 * MiB))
    [kept] = object_keys(s3, payload_bucket)

    [invocation] = mapping.run_until_idle()

    assert invocation.reported == []
    assert len(digests) == 1
    [(dead_body, reason)] = dead_letters(broker)
    assert json.loads(dead_body)[0] == POINTER_CLASS
    assert json.loads(dead_body)[1]["s3Key"] == kept
    assert reason["offload.error_type"] == "ValueError"
    assert object_keys(s3, payload_bucket) == [kept], "the dead letter still has its payload"


def test_a_pointer_to_a_missing_object_is_dead_lettered_with_that_reason_and_not_reported(
    broker, digests, mapping, s3, payload_bucket
):
    broker.get_actor("measure").send(blob(2 * MiB))
    [key] = object_keys(s3, payload_bucket)
    s3.delete_object(Bucket=payload_bucket, Key=key)

    [invocation] = mapping.run_until_idle()

    assert invocation.reported == []
    assert digests == []
    [(_, reason)] = dead_letters(broker)
    assert reason["offload.error_type"] == "PayloadMissing"
