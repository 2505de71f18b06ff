"""Interoperability with AWS's SQS Extended Client for Python (the amazon-sqs-extended-client package),
run in a subprocess because it patches boto3 for its whole process."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys

import dramatiq

from tests.brokers.conftest import object_keys, queue_counts, wait_until

MiB = 1024 * 1024


def _extended_client(sqs_endpoint: str, *args: str, stdin: str = "") -> dict:
    env = {**os.environ, "SQS_ENDPOINT_URL": sqs_endpoint, "AWS_ENDPOINT_URL_S3": sqs_endpoint}
    done = subprocess.run(
        [sys.executable, "-m", "tests.brokers.extended_client", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def test_a_2_mib_message_the_extended_client_sent_runs_in_our_worker(
    make_broker, start_worker, sqs_endpoint, s3, bucket
):
    broker = make_broker(payload_bucket=bucket)
    runs = []

    @dramatiq.actor(broker=broker)
    def store(blob):
        runs.append(_digest(blob))

    blob = "Zoë 🚀 " + "x" * (2 * MiB)
    body = store.message(blob).encode().decode("utf-8")
    _extended_client(sqs_endpoint, "send", broker.queue_url("default"), bucket, stdin=body)
    assert len(object_keys(s3, bucket)) == 1  # it did go through S3

    start_worker(broker)
    wait_until(lambda: runs, what="the message to run")
    broker.join("default", timeout=10_000)
    broker.payloads.flush()

    assert runs == [_digest(blob)]
    assert object_keys(s3, bucket) == []  # deleted on ack, as the Java client does by default


def test_the_extended_client_reads_a_2_mib_message_our_broker_sent(
    make_broker, sqs, sqs_endpoint, s3, bucket
):
    broker = make_broker(payload_bucket=bucket)

    @dramatiq.actor(broker=broker)
    def store(blob):
        pass

    blob = "Zoë 🚀 " + "x" * (2 * MiB)
    message = store.send(blob)
    received = _extended_client(sqs_endpoint, "receive", broker.queue_url("default"))

    assert json.loads(received["Body"])["message_id"] == message.message_id
    assert _digest(json.loads(received["Body"])["args"][0]) == _digest(blob)
    assert "ExtendedPayloadSize" not in received["MessageAttributes"]  # it recognised the pointer
    # It deleted the message with the receipt handle it rebuilt from ours, and left the object (its default).
    assert queue_counts(sqs, broker.queue_url("default")) == {"visible": 0, "in_flight": 0, "delayed": 0}
    assert len(object_keys(s3, bucket)) == 1
