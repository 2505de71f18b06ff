"""Dead letters with reasons, retries that outlast SQS's delay limit, and bad messages."""

from __future__ import annotations

import json
import time
import uuid

import dramatiq
from dramatiq.middleware import Middleware

from brokers.deadletters import Reason
from brokers.receiving import decide
from tests.brokers.conftest import queue_counts, receive_all, wait_until


class _RecordEnqueues(Middleware):
    def __init__(self) -> None:
        self.messages: list = []

    def after_enqueue(self, broker, message, delay):
        self.messages.append((message, delay))


def _attributes(raw: dict) -> dict[str, str]:
    return {name: value["StringValue"] for name, value in raw.get("MessageAttributes", {}).items()}


def test_a_message_that_exhausts_its_retries_lands_in_the_dead_letter_queue_with_the_reason(
    sqs_broker, start_worker, sqs
):
    @dramatiq.actor(broker=sqs_broker, max_retries=0)
    def charge(order_id):
        raise ValueError(f"card declined for order {order_id}")

    message = charge.send(42)
    start_worker(sqs_broker)
    dead_letter_url = sqs_broker.dead_letter_queue_url("default")
    wait_until(lambda: queue_counts(sqs, dead_letter_url)["visible"] == 1)
    sqs_broker.join("default", timeout=10_000)

    [raw] = receive_all(sqs, dead_letter_url)
    assert json.loads(raw["Body"])["message_id"] == message.message_id
    reason = _attributes(raw)
    assert reason["offload.actor"] == "charge"
    assert reason["offload.queue"] == "default"
    assert reason["offload.error_type"] == "ValueError"
    assert reason["offload.error"] == "card declined for order 42"
    assert reason["offload.attempts"] == "1"
    assert reason["offload.failed_at"].startswith(time.strftime("%Y-", time.gmtime()))
    assert queue_counts(sqs, sqs_broker.queue_url("default")) == {"visible": 0, "in_flight": 0, "delayed": 0}


def test_a_retry_whose_backoff_passes_fifteen_minutes_is_kept_with_its_eta(make_broker, start_worker, sqs):
    recorder = _RecordEnqueues()
    broker = make_broker(middleware=[*(m() for m in dramatiq.middleware.default_middleware), recorder])
    attempts = []

    @dramatiq.actor(broker=broker, min_backoff=2 * 60 * 60 * 1000, max_retries=5)
    def flaky():
        attempts.append(time.time())
        raise RuntimeError("upstream down")

    flaky.send()
    start_worker(broker)
    wait_until(lambda: len(recorder.messages) == 2)
    wait_until(
        lambda: queue_counts(sqs, broker.queue_url("default")) == {"visible": 0, "in_flight": 0, "delayed": 1}
    )

    retry, delay = recorder.messages[1]
    assert delay >= 2 * 60 * 60 * 1000
    assert retry.options["eta"] >= attempts[0] * 1000 + 2 * 60 * 60 * 1000
    assert retry.options["retries"] == 1
    assert len(attempts) == 1


def test_a_message_not_yet_due_is_delayed_again_instead_of_run(sqs_broker, start_worker, sqs):
    runs = []

    @dramatiq.actor(broker=sqs_broker)
    def later():
        runs.append(1)

    url = sqs_broker.queue_url("default")
    eta = int(time.time() * 1000) + 3 * 60 * 60 * 1000
    body = _body("later", eta=eta)
    sqs.send_message(QueueUrl=url, MessageBody=body)  # as if an earlier 15-minute hop just ended
    start_worker(sqs_broker)
    wait_until(lambda: queue_counts(sqs, url) == {"visible": 0, "in_flight": 0, "delayed": 1})

    assert runs == []
    assert sqs_broker.stats["SendMessage"] == 1  # the hop, carrying the body unchanged


def test_an_undecodable_body_goes_to_the_dead_letter_queue_and_the_worker_keeps_going(
    sqs_broker, start_worker, sqs
):
    done = []

    @dramatiq.actor(broker=sqs_broker)
    def task(n):
        done.append(n)

    url = sqs_broker.queue_url("default")
    sqs.send_message(QueueUrl=url, MessageBody="this is not json {")
    start_worker(sqs_broker)
    task.send(1)
    wait_until(lambda: done == [1])
    dead_letter_url = sqs_broker.dead_letter_queue_url("default")
    wait_until(lambda: queue_counts(sqs, dead_letter_url)["visible"] == 1)

    [raw] = receive_all(sqs, dead_letter_url)
    assert raw["Body"] == "this is not json {"
    assert _attributes(raw)["offload.error_type"] == "DecodeError"
    sqs_broker.join("default", timeout=10_000)


def test_a_message_for_an_actor_that_does_not_exist_goes_to_the_dead_letter_queue(
    sqs_broker, start_worker, sqs
):
    @dramatiq.actor(broker=sqs_broker)
    def known():
        pass

    url = sqs_broker.queue_url("default")
    sqs.send_message(QueueUrl=url, MessageBody=_body("vanished"))
    start_worker(sqs_broker)
    dead_letter_url = sqs_broker.dead_letter_queue_url("default")
    wait_until(lambda: queue_counts(sqs, dead_letter_url)["visible"] == 1)

    [raw] = receive_all(sqs, dead_letter_url)
    reason = _attributes(raw)
    assert reason["offload.error_type"] == "ActorNotFound"
    assert reason["offload.actor"] == "vanished"
    sqs_broker.join("default", timeout=10_000)


def test_a_message_whose_dead_letter_queue_is_gone_is_not_deleted(make_broker, start_worker, sqs):
    broker = make_broker(visibility_timeout=2_000)
    runs = []

    @dramatiq.actor(broker=broker, max_retries=0)
    def doomed():
        runs.append(1)
        raise RuntimeError("fails every time")

    url = broker.queue_url("default")
    sqs.delete_queue(QueueUrl=broker.dead_letter_queue_url("default"))
    doomed.send()
    start_worker(broker)
    wait_until(lambda: len(runs) >= 2, timeout=20)  # back after its lease, so tried again

    counts = queue_counts(sqs, url)
    assert counts["visible"] + counts["in_flight"] == 1


def test_a_retry_that_cannot_be_enqueued_leaves_the_original_in_sqs(
    make_broker, start_worker, sqs, namespace
):
    # The retry carries the traceback in its options, which no longer fits this small queue.
    sqs.create_queue(QueueName=f"{namespace}-default", Attributes={"MaximumMessageSize": "1024"})
    broker = make_broker(visibility_timeout=2_000)
    runs = []

    @dramatiq.actor(broker=broker, max_retries=3, min_backoff=10)
    def bulky():
        runs.append(1)
        raise RuntimeError("x" * 600)

    bulky.send()
    start_worker(broker)
    wait_until(lambda: len(runs) >= 2, timeout=20)  # delivered again by SQS after its lease

    counts = queue_counts(sqs, broker.queue_url("default"))
    assert counts["visible"] + counts["in_flight"] == 1


def _body(actor_name: str, **options) -> str:
    return json.dumps(
        {
            "queue_name": "default",
            "actor_name": actor_name,
            "args": [],
            "kwargs": {},
            "options": options,
            "message_id": str(uuid.uuid4()),
            "message_timestamp": int(time.time() * 1000),
        }
    )


def test_an_operator_sees_the_counts_and_redrives_dead_letters_once_the_cause_is_fixed(
    sqs_broker, start_worker, sqs
):
    fixed = False
    charged = []

    @dramatiq.actor(broker=sqs_broker, max_retries=0)
    def charge(order_id):
        if not fixed:
            raise ConnectionError("payment provider down")
        charged.append(order_id)

    for order_id in (1, 2, 3):
        charge.send(order_id)
    worker = start_worker(sqs_broker)
    wait_until(lambda: sqs_broker.queue_counts("default")["dead_letters"] == 3)
    sqs_broker.join("default", timeout=10_000)
    assert sqs_broker.queue_counts("default") == {
        "visible": 0,
        "in_flight": 0,
        "delayed": 0,
        "dead_letters": 3,
    }

    fixed = True
    assert sqs_broker.redrive("default") == 3
    wait_until(lambda: sorted(charged) == [1, 2, 3])
    sqs_broker.join("default", timeout=10_000)
    worker.stop()

    assert sqs_broker.queue_counts("default")["dead_letters"] == 0


def test_any_place_that_receives_can_dead_letter_a_body_with_the_reason_the_worker_would_give(
    sqs_broker, sqs
):
    sqs_broker.declare_queue("default")
    queue = sqs_broker.queue("default")
    body = "not a message"
    rejected = decide(body, queue, now_ms=int(time.time() * 1000))

    sqs_broker.dead_letters.send(
        queue, body=body, reason=Reason.for_rejected(rejected, queue), message_id="raw-1"
    )

    [raw] = receive_all(sqs, sqs_broker.dead_letter_queue_url("default"))
    assert raw["Body"] == body
    reason = _attributes(raw)
    assert reason["offload.error_type"] == "DecodeError"
    assert reason["offload.error"].startswith("The body is not a dramatiq message: JSONDecodeError")
    assert reason["offload.queue"] == "default"
