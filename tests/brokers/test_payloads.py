"""Messages larger than SQS takes, through S3 as Extended Client pointers, on every path a message takes."""

from __future__ import annotations

import hashlib
import json
import logging
import time
from typing import Any
from urllib.parse import urlsplit

import boto3
import botocore.config
import dramatiq
import pytest
from dramatiq.errors import ConnectionClosed

from brokers import BatchSendFailed, MessageTooLarge
from brokers.errors import PayloadError, PayloadMissing
from brokers.names import sqs_queue_name
from brokers.payloads import LEGACY_POINTER_CLASS, POINTER_CLASS
from tests.brokers.conftest import object_keys, queue_counts, receive_all, wait_until
from tests.brokers.tcpproxy import CuttableProxy

MiB = 1024 * 1024


def _blob(size: int) -> str:
    """Text of about `size` bytes that is not all one character (and not all ASCII)."""
    return ("Zoë 🚀 " + "0123456789abcdef" * (size // 16))[:size]


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _peek(sqs: Any, url: str) -> dict[str, Any]:
    """The one message on a queue, received so that it is visible again at once."""
    [raw] = sqs.receive_message(
        QueueUrl=url, MessageAttributeNames=["All"], VisibilityTimeout=0, WaitTimeSeconds=0
    )["Messages"]
    return raw


def _attributes(raw: dict[str, Any]) -> dict[str, str]:
    return {name: value["StringValue"] for name, value in raw.get("MessageAttributes", {}).items()}


def _unreachable_s3(proxy: CuttableProxy) -> Any:
    """An S3 client behind a proxy the test can cut, failing fast instead of retrying."""
    config = botocore.config.Config(
        retries={"mode": "standard", "max_attempts": 1}, s3={"addressing_style": "path"}, connect_timeout=2
    )
    return boto3.client("s3", endpoint_url=proxy.endpoint_url, region_name="us-east-1", config=config)


def _send_in_a_batch(broker, messages):
    with broker.batch():
        for message in messages:
            broker.enqueue(message)


@pytest.fixture
def s3_proxy(sqs_endpoint: str):
    parts = urlsplit(sqs_endpoint)
    proxy = CuttableProxy(parts.hostname or "127.0.0.1", parts.port or 80)
    yield proxy
    proxy.close()


@pytest.mark.parametrize("size", [2 * MiB, 5 * MiB], ids=["2MiB", "5MiB"])
def test_a_message_larger_than_sqs_takes_runs_through_a_worker_and_its_object_goes_once_it_is_acked(
    make_broker, start_worker, sqs, s3, bucket, size
):
    broker = make_broker(payload_bucket=bucket)
    runs = []

    @dramatiq.actor(broker=broker)
    def store(blob):
        runs.append((_digest(blob), object_keys(s3, bucket)))

    blob = _blob(size)
    message = store.send(blob)

    raw = _peek(sqs, broker.queue_url("default"))
    pointer = json.loads(raw["Body"])
    assert pointer[0] == POINTER_CLASS
    assert pointer[1]["s3BucketName"] == bucket
    assert _attributes(raw) == {"ExtendedPayloadSize": str(len(message.encode()))}
    stored = s3.get_object(Bucket=bucket, Key=pointer[1]["s3Key"])["Body"].read()
    assert json.loads(stored)["message_id"] == message.message_id

    start_worker(broker)
    wait_until(lambda: runs, what="the large message to run")
    broker.join("default", timeout=10_000)
    broker.payloads.flush()

    assert runs == [(_digest(blob), [pointer[1]["s3Key"]])]  # the object was there while it ran
    assert object_keys(s3, bucket) == []  # and is gone once the message is
    stats = broker.stats
    assert (stats["s3:PutObject"], stats["s3:GetObject"], stats["s3:DeleteObject"]) == (1, 1, 1)
    assert stats["SendMessage"] == 1
    assert stats["DeleteMessageBatch"] == 1


def test_large_messages_inside_a_batch_go_through_s3_beside_small_ones_in_requests_under_one_mebibyte(
    make_broker, start_worker, sqs, s3, bucket
):
    broker = make_broker(payload_bucket=bucket)
    done = []

    @dramatiq.actor(broker=broker)
    def store(name, blob):
        done.append((name, _digest(blob)))

    sent = {
        "small a": "a",
        "2 MiB": _blob(2 * MiB),
        "small b": "b",
        "5 MiB": _blob(5 * MiB),
        "900 KiB one": _blob(900 * 1024),  # fits SQS: two of them do not fit one request
        "900 KiB two": _blob(900 * 1024),
    }
    broker.declare_queue("default")
    with broker.batch():
        for name, blob in sent.items():
            store.send(name, blob)

    assert broker.stats["s3:PutObject"] == 2
    assert broker.stats["SendMessageBatch"] == 2
    assert len(object_keys(s3, bucket)) == 2
    start_worker(broker)
    wait_until(lambda: len(done) == len(sent), timeout=30, what="every message to run")
    broker.join("default", timeout=10_000)
    broker.payloads.flush()

    assert sorted(done) == sorted((name, _digest(blob)) for name, blob in sent.items())
    assert object_keys(s3, bucket) == []


def test_a_large_message_delayed_past_fifteen_minutes_waits_in_sqs_as_its_pointer(
    make_broker, sqs, s3, bucket
):
    broker = make_broker(payload_bucket=bucket)

    @dramatiq.actor(broker=broker)
    def later(blob):
        pass

    later.send_with_options(args=(_blob(2 * MiB),), delay=20 * 60 * 1000)

    assert queue_counts(sqs, broker.queue_url("default")) == {"visible": 0, "in_flight": 0, "delayed": 1}
    [key] = object_keys(s3, bucket)
    stored = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    assert stored["options"]["eta"] > time.time() * 1000 + 15 * 60 * 1000


def test_a_large_message_not_yet_due_hops_as_the_same_pointer_and_keeps_its_object(
    make_broker, start_worker, sqs, s3, bucket
):
    broker = make_broker(payload_bucket=bucket)
    runs = []

    @dramatiq.actor(broker=broker)
    def later(blob):
        runs.append(1)

    eta = time.time() * 1000 + 3 * 60 * 60 * 1000  # as if an earlier 15-minute hop just ended
    broker.enqueue(later.message_with_options(args=(_blob(2 * MiB),), eta=eta))
    [key] = object_keys(s3, bucket)
    start_worker(broker)
    url = broker.queue_url("default")
    # Nothing in flight: the received message is deleted, only the hop is left.
    wait_until(lambda: queue_counts(sqs, url) == {"visible": 0, "in_flight": 0, "delayed": 1}, what="the hop")
    broker.payloads.flush()

    assert runs == []
    assert broker.stats["SendMessage"] == 2  # the send, and the hop
    assert broker.stats["s3:PutObject"] == 1  # the hop carried the same pointer
    assert object_keys(s3, bucket) == [key]  # which still finds its payload


def test_a_large_message_delayed_a_few_seconds_runs_when_due_and_its_object_goes_then(
    make_broker, start_worker, s3, bucket
):
    broker = make_broker(payload_bucket=bucket)
    runs = []

    @dramatiq.actor(broker=broker)
    def later(blob):
        runs.append((time.time() * 1000, _digest(blob)))

    blob = _blob(2 * MiB)
    message = later.send_with_options(args=(blob,), delay=3_000)
    start_worker(broker)
    wait_until(lambda: runs, timeout=20, what="the delayed message to run")
    broker.join("default", timeout=10_000)
    broker.payloads.flush()

    [(ran_at, digest)] = runs
    assert ran_at >= message.options["eta"]
    assert digest == _digest(blob)
    assert broker.stats["s3:PutObject"] == 1
    assert object_keys(s3, bucket) == []


def test_a_failing_large_message_is_retried_through_s3_and_each_object_goes_with_its_message(
    make_broker, start_worker, s3, bucket
):
    broker = make_broker(payload_bucket=bucket)
    attempts = []

    @dramatiq.actor(broker=broker, max_retries=3, min_backoff=10, max_backoff=100)
    def flaky(blob):
        attempts.append(object_keys(s3, bucket))
        if len(attempts) == 1:
            raise RuntimeError("the first try fails")

    flaky.send(_blob(2 * MiB))
    start_worker(broker)
    wait_until(lambda: len(attempts) == 2, timeout=20, what="the retry to run")
    broker.join("default", timeout=10_000)
    broker.payloads.flush()

    first, second = attempts
    assert len(first) == 1
    assert set(second) - set(first)  # the retry carries a new body (its retry count), so a new object
    assert broker.stats["s3:PutObject"] == 2
    assert broker.stats["s3:DeleteObject"] == 2
    assert object_keys(s3, bucket) == []


def test_a_dead_lettered_large_message_keeps_its_object_until_it_is_redriven_and_done(
    make_broker, start_worker, sqs, s3, bucket
):
    broker = make_broker(payload_bucket=bucket)
    fixed = False
    charged = []

    @dramatiq.actor(broker=broker, max_retries=0)
    def charge(blob):
        if not fixed:
            raise ConnectionError("payment provider down")
        charged.append(_digest(blob))

    blob = _blob(2 * MiB)
    charge.send(blob)
    start_worker(broker)
    wait_until(lambda: broker.queue_counts("default")["dead_letters"] == 1, what="the dead letter")
    broker.join("default", timeout=10_000)
    broker.payloads.flush()

    dead = _peek(sqs, broker.dead_letter_queue_url("default"))
    pointer = json.loads(dead["Body"])
    assert pointer[0] == POINTER_CLASS
    reason = _attributes(dead)
    assert reason["offload.error_type"] == "ConnectionError"
    assert reason["offload.actor"] == "charge"
    assert int(reason["ExtendedPayloadSize"]) > 2 * MiB
    assert object_keys(s3, bucket) == [pointer[1]["s3Key"]]  # the dead letter's payload is kept

    fixed = True
    assert broker.redrive("default") == 1
    wait_until(lambda: charged == [_digest(blob)], what="the redriven message to run")
    broker.join("default", timeout=10_000)
    broker.payloads.flush()

    assert broker.queue_counts("default")["dead_letters"] == 0
    assert object_keys(s3, bucket) == []


def test_a_pointer_whose_object_is_missing_goes_to_the_dead_letter_queue_with_that_reason(
    make_broker, start_worker, sqs, bucket
):
    broker = make_broker(payload_bucket=bucket)

    @dramatiq.actor(broker=broker)
    def store(blob):
        pass

    body = json.dumps([POINTER_CLASS, {"s3BucketName": bucket, "s3Key": "gone"}])
    sqs.send_message(
        QueueUrl=broker.queue_url("default"),
        MessageBody=body,
        MessageAttributes={"ExtendedPayloadSize": {"DataType": "Number", "StringValue": "2097152"}},
    )
    start_worker(broker)
    dead_letter_url = broker.dead_letter_queue_url("default")
    wait_until(lambda: queue_counts(sqs, dead_letter_url)["visible"] == 1, what="the dead letter")

    [dead] = receive_all(sqs, dead_letter_url)
    assert dead["Body"] == body
    reason = _attributes(dead)
    assert reason["offload.error_type"] == "PayloadMissing"
    assert f"s3://{bucket}/gone" in reason["offload.error"]
    broker.join("default", timeout=10_000)


def test_a_large_message_whose_payload_s3_cannot_hand_over_stays_in_sqs_and_runs_once_s3_is_back(
    make_broker, start_worker, sqs, s3, bucket, s3_proxy, caplog
):
    producer = make_broker(payload_bucket=bucket)
    consumer = make_broker(
        payload_bucket=bucket, s3_client=_unreachable_s3(s3_proxy), visibility_timeout=2_000
    )
    runs = []

    for broker in (producer, consumer):

        @dramatiq.actor(broker=broker, actor_name="store")
        def store(blob):
            runs.append(_digest(blob))

    blob = _blob(2 * MiB)
    producer.enqueue(store.message(blob))
    s3_proxy.cut()
    start_worker(consumer)
    caplog.set_level(logging.WARNING, logger="brokers.intake")
    wait_until(
        lambda: any("Could not read the S3 payload" in m for m in caplog.messages),
        what="a failed read of the payload, handled",
    )

    counts = consumer.queue_counts("default")
    assert counts["dead_letters"] == 0
    assert counts["visible"] + counts["in_flight"] == 1
    assert runs == []

    s3_proxy.restore()
    wait_until(lambda: runs == [_digest(blob)], timeout=20, what="the message to run once S3 is back")
    consumer.join("default", timeout=10_000)
    consumer.payloads.flush()
    assert object_keys(s3, bucket) == []


def test_a_large_message_s3_cannot_store_fails_alone_and_nothing_reaches_the_queue(
    make_broker, sqs, bucket, s3_proxy
):
    broker = make_broker(payload_bucket=bucket, s3_client=_unreachable_s3(s3_proxy))

    @dramatiq.actor(broker=broker)
    def store(blob):
        pass

    s3_proxy.cut()
    with pytest.raises(ConnectionClosed, match="S3 could not be reached"):
        store.send(_blob(2 * MiB))
    store.send("small")

    assert queue_counts(sqs, broker.queue_url("default"))["visible"] == 1


def test_in_a_batch_a_large_message_s3_cannot_store_fails_alone_while_the_others_are_sent(
    make_broker, sqs, bucket, s3_proxy
):
    broker = make_broker(payload_bucket=bucket, s3_client=_unreachable_s3(s3_proxy))

    @dramatiq.actor(broker=broker)
    def store(blob):
        pass

    broker.declare_queue("default")
    s3_proxy.cut()
    large = store.message(_blob(2 * MiB))
    with pytest.raises(BatchSendFailed) as failure:
        _send_in_a_batch(broker, [store.message("before"), large, store.message("after")])

    [failed] = failure.value.failed
    assert failed.message_id == large.message_id
    assert failed.code == "ConnectionClosed"
    assert failure.value.sent == 2
    assert queue_counts(sqs, broker.queue_url("default"))["visible"] == 2


def test_a_large_message_for_a_bucket_that_does_not_exist_is_refused_with_s3s_reason(make_broker, sqs):
    broker = make_broker(payload_bucket="no-such-bucket-for-offload")

    @dramatiq.actor(broker=broker)
    def store(blob):
        pass

    with pytest.raises(PayloadError, match="S3 PutObject failed: NoSuchBucket"):
        store.send(_blob(2 * MiB))
    with pytest.raises(BatchSendFailed, match=r"S3\.NoSuchBucket"):
        _send_in_a_batch(broker, [store.message(_blob(2 * MiB))])

    assert queue_counts(sqs, broker.queue_url("default"))["visible"] == 0


def test_without_a_bucket_a_message_too_large_is_refused_and_the_error_says_how_to_send_it(make_broker):
    broker = make_broker()

    @dramatiq.actor(broker=broker)
    def store(blob):
        pass

    with pytest.raises(MessageTooLarge, match=r"accepts at most 1,048,576 bytes\. .*payload_bucket"):
        store.send(_blob(2 * MiB))


def test_the_threshold_decides_which_messages_go_through_s3(make_broker, sqs, s3, bucket):
    broker = make_broker(payload_bucket=bucket, payload_threshold=1024)

    @dramatiq.actor(broker=broker)
    def store(blob):
        pass

    store.send("x" * 500)
    store.send("x" * 2000)

    bodies = sorted(m["Body"] for m in receive_all(sqs, broker.queue_url("default")))
    assert sum(body.startswith(f'["{POINTER_CLASS}"') for body in bodies) == 1
    assert len(object_keys(s3, bucket)) == 1


def test_without_a_threshold_a_queues_own_maximum_message_size_decides(
    make_broker, sqs, s3, bucket, namespace
):
    # A queue made elsewhere with SQS's old limit of 256 KiB, as older stacks have them.
    for dead_letter in (True, False):
        name = sqs_queue_name("default", namespace=namespace, dead_letter=dead_letter)
        sqs.create_queue(QueueName=name, Attributes={"MaximumMessageSize": str(256 * 1024)})
    broker = make_broker(payload_bucket=bucket)

    @dramatiq.actor(broker=broker)
    def store(blob):
        pass

    store.send("x" * 200 * 1024)
    store.send("x" * 300 * 1024)  # within SQS's 1 MiB, over this queue's 256 KiB

    bodies = [m["Body"] for m in receive_all(sqs, broker.queue_url("default"))]
    assert len(bodies) == 2
    [pointer] = [json.loads(body) for body in bodies if body.startswith(f'["{POINTER_CLASS}"')]
    stored = s3.get_object(Bucket=bucket, Key=pointer[1]["s3Key"])["Body"].read()
    assert json.loads(stored)["args"] == ["x" * 300 * 1024]


@pytest.mark.parametrize(
    ("pointer_class", "size_attribute", "dumps"),
    [
        (POINTER_CLASS, "ExtendedPayloadSize", lambda value: json.dumps(value, separators=(",", ":"))),
        (LEGACY_POINTER_CLASS, "SQSLargePayloadSize", json.dumps),
        (POINTER_CLASS, None, lambda value: json.dumps(value, indent=4)),
    ],
    ids=["current-compact", "legacy-spaced", "no-attribute-indented"],
)
def test_pointers_in_every_form_the_extended_clients_write_are_run(
    make_broker, start_worker, sqs, s3, bucket, pointer_class, size_attribute, dumps
):
    broker = make_broker(payload_bucket=bucket)
    runs = []

    @dramatiq.actor(broker=broker)
    def store(blob):
        runs.append(_digest(blob))

    blob = _blob(2 * MiB)
    payload = store.message(blob).encode()
    s3.put_object(Bucket=bucket, Key="from-elsewhere", Body=payload)
    attributes = {}
    if size_attribute:
        attributes[size_attribute] = {"DataType": "Number", "StringValue": str(len(payload))}
    sqs.send_message(
        QueueUrl=broker.queue_url("default"),
        MessageBody=dumps([pointer_class, {"s3BucketName": bucket, "s3Key": "from-elsewhere"}]),
        MessageAttributes=attributes,
    )
    start_worker(broker)
    wait_until(lambda: runs, what="the message to run")
    broker.join("default", timeout=10_000)
    broker.payloads.flush()

    assert runs == [_digest(blob)]
    assert object_keys(s3, bucket) == []


def test_with_delete_payloads_off_every_object_is_left_to_the_lifecycle_rule(
    make_broker, start_worker, s3, bucket
):
    broker = make_broker(payload_bucket=bucket, delete_payloads=False)
    runs = []

    @dramatiq.actor(broker=broker)
    def store(blob):
        runs.append(1)

    store.send(_blob(2 * MiB))
    start_worker(broker)
    wait_until(lambda: runs, what="the message to run")
    broker.join("default", timeout=10_000)
    broker.payloads.flush()

    assert len(object_keys(s3, bucket)) == 1
    assert "s3:DeleteObject" not in broker.stats


def test_a_place_that_receives_by_itself_resolves_pointers_and_deletes_them_after_success(
    make_broker, sqs, s3, bucket
):
    broker = make_broker(payload_bucket=bucket)

    @dramatiq.actor(broker=broker)
    def store(blob):
        pass

    message = store.send(_blob(2 * MiB))
    raw = _peek(sqs, broker.queue_url("default"))
    # As a Lambda event's record carries them: camelCase.
    attributes = {
        name: {"stringValue": value["StringValue"], "dataType": value["DataType"]}
        for name, value in raw["MessageAttributes"].items()
    }

    assert json.loads(broker.payloads.resolve(raw["Body"], attributes))["message_id"] == message.message_id
    assert broker.payloads.resolve('{"an": "ordinary body"}', {}) == '{"an": "ordinary body"}'
    assert broker.payloads.delete_after_success('{"an": "ordinary body"}') is False
    assert broker.payloads.delete_after_success(raw["Body"], attributes) is True
    assert object_keys(s3, bucket) == []
    with pytest.raises(PayloadMissing, match=r"NoSuchKey"):
        broker.payloads.resolve(raw["Body"], attributes)


@pytest.mark.parametrize(
    ("options", "error"),
    [
        ({"payload_bucket": "Not_A_Bucket"}, "is not an S3 bucket name"),
        ({"payload_threshold": 1000}, "payload_threshold needs a payload_bucket"),
        ({"payload_bucket": "payloads", "payload_threshold": 2 * MiB}, "between 1 and 1,048,576 bytes"),
    ],
)
def test_payload_settings_that_cannot_work_are_refused_when_the_broker_is_made(make_broker, options, error):
    with pytest.raises(ValueError, match=error):
        make_broker(**options)
