"""worker_handler: Lambda's SQS event source, called with events shaped like AWS's documented samples."""

from __future__ import annotations

import json

import pytest
from dramatiq.common import current_millis

from brokers import NotAnSQSEvent
from tests.aws_lambda.conftest import dead_letters, queue_arn
from tests.aws_lambda.events import LambdaContext, failures, sample, sqs_event, sqs_record
from tests.brokers.conftest import queue_counts
from web.aws_lambda import worker_handler
from web.ops.models import TaskRun

pytestmark = pytest.mark.django_db(transaction=True)

FIFTEEN_MINUTES_MS = 15 * 60 * 1000


def body(broker, actor_name: str, *args, **options) -> str:
    """The body the broker would send for a call of the actor, with these message options."""
    message = broker.get_actor(actor_name).message(*args)
    return message.copy(options=options).encode().decode("utf-8")


def test_the_documented_sample_runs_its_message_and_dead_letters_the_body_that_is_not_one(broker):
    # The sample's first record carries String, Number and Binary message attributes; the second
    # holds "Test message.", which no actor can run.
    arn = queue_arn(broker)
    event = sample("sqs_standard")
    for record in event["Records"]:
        record["eventSourceARN"] = arn
    event["Records"][0]["body"] = echo = body(broker, "echo", "hello from Lambda")

    answer = worker_handler(event, LambdaContext())

    assert failures(answer) == []
    run = TaskRun.objects.get(message_id=json.loads(echo)["message_id"])
    assert (run.actor_name, run.status) == ("echo", TaskRun.Status.SUCCEEDED)
    [(dead_body, reason)] = dead_letters(broker)
    assert dead_body == "Test message."
    assert reason["offload.error_type"] == "DecodeError"
    assert reason["offload.queue"] == "default"


def test_a_failed_actor_with_retries_left_is_sent_again_with_its_backoff_and_not_reported(broker, actors):
    record = sqs_record(body(broker, "flaky", "first try"), queue_arn=queue_arn(broker))

    answer = worker_handler(sqs_event(record), LambdaContext())

    assert failures(answer) == []
    assert actors.ran == ["first try"]
    # The retry waits out its backoff (1.5-3 s) before anyone can receive it.
    assert queue_counts(broker.client, broker.queue_url("default"))["delayed"] == 1
    run = TaskRun.objects.get(actor_name="flaky")
    assert run.status == TaskRun.Status.RETRYING
    assert run.error == "RuntimeError: first try could not be done"


def enqueued(broker, monkeypatch) -> list:
    """What the broker sends from now on (it still sends it)."""
    sent = []
    send = broker.enqueue
    monkeypatch.setattr(
        broker, "enqueue", lambda message, *, delay=None: sent.append(send(message, delay=delay))
    )
    return sent


def test_a_retry_whose_backoff_passes_fifteen_minutes_keeps_its_due_time(broker, actors, monkeypatch):
    long_wait = {"min_backoff": 2 * FIFTEEN_MINUTES_MS, "max_backoff": 4 * FIFTEEN_MINUTES_MS}
    sent = enqueued(broker, monkeypatch)
    record = sqs_record(body(broker, "flaky", "later", **long_wait), queue_arn=queue_arn(broker))
    before = current_millis()

    answer = worker_handler(sqs_event(record), LambdaContext())

    assert failures(answer) == []
    [retry] = sent
    assert retry.options["retries"] == 1
    assert retry.options["eta"] - before > FIFTEEN_MINUTES_MS
    assert queue_counts(broker.client, broker.queue_url("default"))["delayed"] == 1


def test_a_record_not_yet_due_is_delayed_again_unchanged_without_running(broker, actors):
    due_in_20_min = current_millis() + 20 * 60 * 1000
    waiting = body(broker, "flaky", "not yet", retries=1, eta=due_in_20_min)

    answer = worker_handler(sqs_event(sqs_record(waiting, queue_arn=queue_arn(broker))), LambdaContext())

    assert failures(answer) == []
    assert actors.ran == []
    assert queue_counts(broker.client, broker.queue_url("default"))["delayed"] == 1


def test_a_message_whose_retries_are_used_up_goes_to_the_dead_letter_queue_with_its_reason(broker, actors):
    last_try = body(broker, "flaky", "last try", retries=2)
    record = sqs_record(last_try, queue_arn=queue_arn(broker))

    answer = worker_handler(sqs_event(record), LambdaContext())

    assert failures(answer) == []
    [(dead_body, reason)] = dead_letters(broker)
    assert reason == {
        "offload.actor": "flaky",
        "offload.queue": "default",
        "offload.error_type": "RuntimeError",
        "offload.error": "last try could not be done",
        "offload.attempts": "3",
    }
    dead = json.loads(dead_body)
    assert (dead["message_id"], dead["args"]) == (json.loads(last_try)["message_id"], ["last try"])
    assert TaskRun.objects.get(actor_name="flaky").status == TaskRun.Status.FAILED


def _unrunnable(broker) -> dict[str, tuple[str, str]]:
    return {
        "not a dramatiq message": ("Test message.", "DecodeError"),
        "fields of the wrong type": (
            json.dumps({**json.loads(body(broker, "echo", "x")), "args": "x"}),
            "DecodeError",
        ),
        "an actor nobody declared": (
            json.dumps({**json.loads(body(broker, "echo", "x")), "actor_name": "vanished"}),
            "ActorNotFound",
        ),
        "retries used up": (body(broker, "flaky", "x", retries=2), "RuntimeError"),
    }


@pytest.mark.parametrize(
    "case",
    ["not a dramatiq message", "fields of the wrong type", "an actor nobody declared", "retries used up"],
)
def test_a_message_that_cannot_run_is_dead_lettered_with_the_same_reason_the_worker_gives(
    case, broker, actors, worker
):
    text, error_type = _unrunnable(broker)[case]
    broker.client.send_message(QueueUrl=broker.queue_url("default"), MessageBody=text)
    broker.join("default", timeout=10_000)
    [(_, by_worker)] = dead_letters(broker)

    answer = worker_handler(sqs_event(sqs_record(text, queue_arn=queue_arn(broker))), LambdaContext())

    assert failures(answer) == []
    [(dead_body, by_lambda)] = dead_letters(broker)
    assert by_lambda == by_worker
    assert by_lambda["offload.error_type"] == error_type
    if error_type == "DecodeError":
        assert dead_body == text


def test_a_record_whose_dead_letter_cannot_be_written_is_reported(broker, actors, caplog):
    queue = broker.queue("default")  # resolved while its dead-letter queue still exists
    broker.client.delete_queue(QueueUrl=queue.dead_letter_url)
    record = sqs_record("Test message.", queue_arn=queue_arn(broker))

    answer = worker_handler(sqs_event(record), LambdaContext())

    assert failures(answer) == [record["messageId"]]
    assert f"Could not dead-letter message {record['messageId']!r}" in caplog.text


def test_a_record_whose_retry_cannot_be_sent_is_reported(broker, actors, caplog):
    arn = queue_arn(broker)
    warm_up = worker_handler(sqs_event(sqs_record(body(broker, "echo", "x"), queue_arn=arn)), LambdaContext())
    assert failures(warm_up) == []
    # The container has looked its queue up; now SQS refuses every send to it.
    broker.client.delete_queue(QueueUrl=broker.queue_url("default"))
    record = sqs_record(body(broker, "flaky", "retry me"), queue_arn=arn)

    answer = worker_handler(sqs_event(record), LambdaContext())

    assert failures(answer) == [record["messageId"]]
    assert actors.ran == ["retry me"]
    assert "Could not send the retry of message" in caplog.text


def test_a_fifo_batch_stops_at_its_first_failure_and_reports_it_with_every_later_record(broker, actors):
    arn = queue_arn(broker, "orders.fifo")
    records = [
        sqs_record(body(broker, "ordered", label), queue_arn=arn, kind="sqs_fifo")
        for label in ("first", "bad second", "third")
    ]

    answer = worker_handler(sqs_event(*records), LambdaContext())

    assert failures(answer) == [records[1]["messageId"], records[2]["messageId"]]
    assert actors.ran == ["first", "bad second"]
    # Nothing was sent again: the reported records come back in their place in the group.
    assert set(queue_counts(broker.client, broker.queue_url("orders.fifo")).values()) == {0}
    assert dead_letters(broker, "orders.fifo") == []


def test_a_fifo_record_on_its_last_delivery_goes_to_the_dead_letter_queue_and_is_not_reported(broker, actors):
    arn = queue_arn(broker, "orders.fifo")
    # Two retries allowed: SQS's third delivery is the last attempt.
    record = sqs_record(body(broker, "ordered", "bad again"), queue_arn=arn, kind="sqs_fifo", receive_count=3)

    answer = worker_handler(sqs_event(record), LambdaContext())

    assert failures(answer) == []
    [(_, reason)] = dead_letters(broker, "orders.fifo")
    assert (reason["offload.error_type"], reason["offload.attempts"]) == ("RuntimeError", "3")


def test_an_actor_still_running_near_the_invocations_deadline_is_stopped_and_retried(
    broker, actors, monkeypatch
):
    record = sqs_record(body(broker, "slow", "big job"), queue_arn=queue_arn(broker))
    sent = enqueued(broker, monkeypatch)

    # 6.5 s left: the handler keeps 5 s back, so the actor gets 1.5 s of its own 10 minutes.
    answer = worker_handler(sqs_event(record), LambdaContext(budget_ms=6_500))

    assert failures(answer) == []
    assert actors.ran == ["big job"]
    [retry] = sent
    assert "TimeLimitExceeded" in retry.options["traceback"]
    assert "time_limit" not in retry.options, "the retry gets the actor's own time limit"


def test_records_are_not_started_when_the_invocation_is_about_to_end(broker, actors, caplog):
    records = [sqs_record(body(broker, "echo", n), queue_arn=queue_arn(broker)) for n in ("a", "b")]

    answer = worker_handler(sqs_event(*records), LambdaContext(budget_ms=4_000))

    assert failures(answer) == [record["messageId"] for record in records]
    assert not TaskRun.objects.exists()
    assert (
        f"Record {records[0]['messageId']!r} was not started: the invocation ends in 4000 ms" in caplog.text
    )


def test_a_record_from_a_queue_no_actor_uses_is_reported_and_the_others_still_run(broker, caplog):
    stranger = queue_arn(broker).rsplit(":", 1)[0] + ":someone-elses-queue"
    record = sqs_record(body(broker, "echo", "x"), queue_arn=stranger)
    ours = sqs_record(body(broker, "echo", "y"), queue_arn=queue_arn(broker))

    answer = worker_handler(sqs_event(record, ours), LambdaContext())

    assert failures(answer) == [record["messageId"]]
    assert TaskRun.objects.get().status == TaskRun.Status.SUCCEEDED
    assert "'someone-elses-queue', which no actor of this broker uses" in caplog.text


@pytest.mark.parametrize(
    ("event", "reason"),
    [
        (sample("scheduler"), "this event is not one (its keys: ['attemptNumber',"),
        (sample("http_api_v2"), "this event is not one (its keys: ['cookies', 'headers',"),
        ([], "this event is not one (its keys: list)"),
        ({"Records": [{"eventSource": "aws:s3", "messageId": "x"}]}, "comes from 'aws:s3', not 'aws:sqs'"),
        (
            {"Records": [{**sample("sqs_standard")["Records"][0], "eventSourceARN": "my-queue"}]},
            "must be an SQS queue's ARN",
        ),
    ],
    ids=["schedule", "http request", "list", "S3 record", "bad ARN"],
)
def test_an_event_that_is_not_an_sqs_event_is_refused_with_the_reason(event, reason, broker):
    with pytest.raises(NotAnSQSEvent) as refused:
        worker_handler(event, LambdaContext())

    assert reason in str(refused.value)
    assert isinstance(refused.value, ValueError)


def test_an_empty_batch_reports_nothing(broker):
    assert worker_handler({"Records": []}, LambdaContext()) == {"batchItemFailures": []}
