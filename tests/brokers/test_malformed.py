"""A broker that never stalls on one bad message: whatever a body holds, the consumer goes on."""

from __future__ import annotations

import json
import logging
import time
import uuid
from typing import Any

import dramatiq
import pytest

from brokers import PollerDied
from tests.brokers.conftest import queue_counts, receive_all, wait_until


def _fields(n: int = 0, **changes: Any) -> dict[str, Any]:
    fields = {
        "queue_name": "default",
        "actor_name": "task",
        "args": [n],
        "kwargs": {},
        "options": {},
        "message_id": str(uuid.uuid4()),
        "message_timestamp": int(time.time() * 1000),
    }
    return {**fields, **changes}


def _body(n: int = 0, **changes: Any) -> str:
    return json.dumps(_fields(n, **changes))


def _with_options(**options: Any) -> str:
    return json.dumps(_fields(options=options))  # json writes NaN and Infinity as Python reads them


def _without(name: str) -> str:
    fields = _fields()
    del fields[name]
    return json.dumps(fields)


#: A body that names its actor but whose arguments are text, not a list.
WRONG_ARGS = _body(args="abc")
#: Bodies that can never run, and a part of the reason each must be dead-lettered with.
MALFORMED = [
    ("not json {", "JSONDecodeError"),
    ("[" * 100_000, "RecursionError"),
    ("[1, 2]", "it is JSON a list, not an object"),
    ("null", "it is JSON null, not an object"),
    ('"task"', "it is JSON a string, not an object"),
    ("{}", "missing field 'queue_name', 'actor_name', 'args', 'kwargs', 'options'"),
    (_without("args"), "missing field 'args'"),
    (_body(priority=1), "unknown field 'priority'"),
    (WRONG_ARGS, "field 'args' must be a list, not a string"),
    (_body(args={"a": 1}), "field 'args' must be a list, not an object"),
    (_body(kwargs=[1]), "field 'kwargs' must be an object, not a list"),
    (_body(options="fast"), "field 'options' must be an object, not a string"),
    (_body(options=None), "field 'options' must be an object, not null"),
    (_body(actor_name=42), "field 'actor_name' must be a string, not an integer"),
    (_body(queue_name=["default"]), "field 'queue_name' must be a string, not a list"),
    (_body(message_id=7), "field 'message_id' must be a string, not an integer"),
    (_body(message_id=""), "field 'message_id' is empty"),
    (_body(message_timestamp="yesterday"), "field 'message_timestamp' must be a number, not a string"),
    (_body(message_timestamp=True), "field 'message_timestamp' must be a number, not a boolean"),
    (_with_options(eta="soon"), "option 'eta' must be a time in epoch milliseconds, not 'soon'"),
    (_with_options(eta=float("nan")), "option 'eta' must be a time in epoch milliseconds, not nan"),
    (_with_options(eta=float("inf")), "option 'eta' must be a time in epoch milliseconds, not inf"),
    (_with_options(eta=True), "option 'eta' must be a time in epoch milliseconds, not True"),
    (_with_options(retries="3"), "option 'retries' must be a count, not '3'"),
    (_with_options(retries=-1), "option 'retries' must be a count, not -1"),
    (_body(queue_name="elsewhere"), "names queue 'elsewhere' but was received from 'default'"),
]


def _reasons(raw_messages: list[dict[str, Any]]) -> dict[str, dict[str, str]]:
    return {
        raw["Body"]: {name: value["StringValue"] for name, value in raw["MessageAttributes"].items()}
        for raw in raw_messages
    }


def test_each_malformed_body_is_dead_lettered_with_its_reason_and_every_message_after_it_runs(
    sqs_broker, start_worker, sqs
):
    done = set()

    @dramatiq.actor(broker=sqs_broker, max_retries=0)
    def task(n):
        done.add(n)

    url = sqs_broker.queue_url("default")
    for n, (body, _) in enumerate(MALFORMED):
        sqs.send_message(QueueUrl=url, MessageBody=body)
        sqs.send_message(QueueUrl=url, MessageBody=_body(n))
    start_worker(sqs_broker, threads=2)
    wait_until(lambda: done == set(range(len(MALFORMED))), timeout=30)
    dead_letter_url = sqs_broker.dead_letter_queue_url("default")
    wait_until(lambda: queue_counts(sqs, dead_letter_url)["visible"] == len(MALFORMED))
    sqs_broker.join("default", timeout=10_000)

    reasons = _reasons(receive_all(sqs, dead_letter_url))
    assert set(reasons) == {body for body, _ in MALFORMED}
    for body, expected in MALFORMED:
        assert reasons[body]["offload.error_type"] == "DecodeError"
        assert expected in reasons[body]["offload.error"], body[:80]
        assert reasons[body]["offload.queue"] == "default"
    assert reasons[WRONG_ARGS]["offload.actor"] == "task"
    assert reasons["not json {"]["offload.actor"] == "-"


def test_an_unexpected_error_while_taking_in_a_message_dead_letters_it_and_the_consumer_goes_on(
    sqs_broker, start_worker, sqs
):
    done = []

    @dramatiq.actor(broker=sqs_broker)
    def task(n):
        done.append(n)

    url = sqs_broker.queue_url("default")

    def fail_the_resend(params, **_):
        # The resend of a message that is not due yet fails in a way nobody planned for.
        if params.get("QueueUrl") == url and "DelaySeconds" in params:
            raise RuntimeError("the resend broke unexpectedly")

    sqs_broker.client.meta.events.register("before-parameter-build.sqs.SendMessage", fail_the_resend)
    later = _body(1, options={"eta": int(time.time() * 1000) + 3 * 60 * 60 * 1000})
    sqs.send_message(QueueUrl=url, MessageBody=later)
    sqs.send_message(QueueUrl=url, MessageBody=_body(2))
    start_worker(sqs_broker)
    wait_until(lambda: done == [2])
    dead_letter_url = sqs_broker.dead_letter_queue_url("default")
    wait_until(lambda: queue_counts(sqs, dead_letter_url)["visible"] == 1)

    reason = _reasons(receive_all(sqs, dead_letter_url))[later]
    assert reason["offload.error_type"] == "RuntimeError"
    assert reason["offload.error"] == "the resend broke unexpectedly"
    sqs_broker.join("default", timeout=10_000)


class _Interrupted(BaseException):
    """Stands for what ends a thread without being an error: SystemExit, an async interrupt."""


def test_a_poller_that_dies_makes_the_consumer_raise_and_the_worker_restarts_it(
    sqs_broker, start_worker, monkeypatch, caplog
):
    monkeypatch.setattr(dramatiq.worker, "CONSUMER_RESTART_DELAY_SECS", 0.2)
    done = []

    @dramatiq.actor(broker=sqs_broker)
    def task(n):
        done.append(n)

    sqs_broker.queue_url("default")
    receives = []

    def die_on_the_first_receive(**_):
        receives.append(1)
        if len(receives) == 1:
            raise _Interrupted

    sqs_broker.client.meta.events.register("before-send.sqs.ReceiveMessage", die_on_the_first_receive)
    task.send(1)
    start_worker(sqs_broker)
    wait_until(lambda: done == [1])

    restarts = [
        record
        for record in caplog.records
        if record.levelno == logging.CRITICAL and record.exc_info and record.exc_info[0] is PollerDied
    ]
    assert len(restarts) == 1
    assert "stopped: _Interrupted()" in str(restarts[0].exc_info[1])


@pytest.mark.parametrize("body", ["this is not json {", WRONG_ARGS])
def test_without_dead_letters_a_body_that_can_never_run_is_deleted_not_redelivered_forever(
    make_broker, start_worker, sqs, body
):
    broker = make_broker(dead_letter=False)
    done = []

    @dramatiq.actor(broker=broker)
    def task(n):
        done.append(n)

    url = broker.queue_url("default")
    sqs.send_message(QueueUrl=url, MessageBody=body)
    sqs.send_message(QueueUrl=url, MessageBody=_body(1))
    start_worker(broker)
    wait_until(lambda: done == [1])

    empty = {"visible": 0, "in_flight": 0, "delayed": 0}
    wait_until(lambda: queue_counts(sqs, url) == empty)
