"""django.tasks through SQSTaskBackend: enqueued on commit, run by a real worker over loopback SQS."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest
from django.db import transaction
from django.tasks import TaskResultStatus, default_task_backend, task
from django.tasks.exceptions import InvalidTask, InvalidTaskBackend, TaskResultDoesNotExist
from django.tasks.signals import task_enqueued, task_finished, task_started
from django.utils import timezone
from dramatiq import Message

from tasks.prune_task_runs import prune_task_runs
from tasks.run_django_task import declare_django_task_queues, run_django_task
from tests.web.core import example_tasks
from web.core.django_tasks import SQSTaskBackend
from web.core.models import OutboxMessage, TaskResultRecord
from web.ops.models import TaskRun

pytestmark = pytest.mark.django_db(transaction=True)


def _done(broker: Any, queue_name: str = "default") -> None:
    broker.join(queue_name, timeout=30_000)


# --- what the "Done when" asks -----------------------------------------------------------------
def test_a_task_enqueued_through_django_tasks_is_run_by_a_worker_and_its_result_shows_its_return_value(
    broker, worker
):
    result = example_tasks.add.enqueue(2, 3)
    assert result.status == TaskResultStatus.READY

    _done(broker)

    stored = example_tasks.add.get_result(result.id)
    assert stored.status == TaskResultStatus.SUCCESSFUL
    assert stored.return_value == 5
    assert stored.args == [2, 3]
    assert stored.errors == []
    assert stored.attempts == 1
    assert stored.enqueued_at <= stored.started_at <= stored.finished_at
    assert stored.last_attempted_at == stored.started_at


def test_a_failing_task_shows_failed_with_its_error_and_traceback_and_is_dead_lettered(broker, worker):
    result = example_tasks.fail.enqueue("the disk is full")

    _done(broker)

    stored = example_tasks.fail.get_result(result.id)
    assert stored.status == TaskResultStatus.FAILED
    assert stored.attempts == 1  # max_retries is 0 unless asked: it ran once
    [error] = stored.errors
    assert error.exception_class is ValueError
    assert "ValueError: the disk is full" in error.traceback
    assert "example_tasks.py" in error.traceback
    with pytest.raises(ValueError, match="Task failed"):
        stored.return_value  # noqa: B018
    assert broker.queue_counts("default")["dead_letters"] == 1
    assert TaskRun.objects.get(message_id=result.id).status == TaskRun.Status.FAILED


def test_refresh_follows_a_result_from_ready_to_successful(broker, worker):
    result = example_tasks.describe.enqueue("offload", tags=["b", "a"], sizes={"x": 1, "y": 3})

    _done(broker)
    result.refresh()

    assert result.status == TaskResultStatus.SUCCESSFUL
    assert result.return_value == {"name": "offload", "tags": ["a", "b"], "largest": "y"}
    assert result.kwargs == {"tags": ["b", "a"], "sizes": {"x": 1, "y": 3}}
    assert len(result.worker_ids[0].split(":")) == 2  # host:pid


def test_a_coroutine_task_runs_in_the_worker(broker, worker):
    result = example_tasks.greet.enqueue("Ada")

    _done(broker)

    assert example_tasks.greet.get_result(result.id).return_value == "Hello, Ada."


# --- after commit ----------------------------------------------------------------------------------------
def test_a_task_enqueued_in_a_transaction_is_stored_at_once_but_sent_only_at_commit(broker):
    with transaction.atomic():
        result = example_tasks.add.enqueue(1, 1)
        assert example_tasks.add.get_result(result.id).status == TaskResultStatus.READY
        assert broker.queue_counts("default")["visible"] == 0

    assert broker.queue_counts("default")["visible"] == 1
    assert not OutboxMessage.objects.exists()


def test_a_rolled_back_transaction_enqueues_nothing_and_keeps_no_result(broker):
    enqueued: list[Any] = []

    def record(sender: type, task_result: Any, **kwargs: Any) -> None:
        enqueued.append(task_result)

    task_enqueued.connect(record)
    try:
        with transaction.atomic():
            result = example_tasks.add.enqueue(1, 1)
            transaction.set_rollback(True)  # what a view that raised does to its request's transaction
    finally:
        task_enqueued.disconnect(record)

    with pytest.raises(TaskResultDoesNotExist):
        example_tasks.add.get_result(result.id)
    assert broker.queue_counts("default")["visible"] == 0
    assert enqueued == []


def test_an_unknown_result_id_does_not_exist():
    with pytest.raises(TaskResultDoesNotExist):
        default_task_backend.get_result("no-such-result")


# --- signals -------------------------------------------------------------------------------------------
@pytest.fixture
def signals() -> Iterator[list[tuple[str, type, str, str]]]:
    """(signal, sender, result id, status at the time) for every task signal sent during the test."""
    seen: list[tuple[str, type, str, str]] = []
    receivers = {}
    for name, signal in (("enqueued", task_enqueued), ("started", task_started), ("finished", task_finished)):

        def receiver(sender: type, task_result: Any, _name: str = name, **kwargs: Any) -> None:
            seen.append((_name, sender, task_result.id, task_result.status))

        receivers[signal] = receiver
        signal.connect(receiver)
    yield seen
    for signal, receiver in receivers.items():
        signal.disconnect(receiver)


def test_the_enqueued_started_and_finished_signals_are_sent_with_the_result_as_it_is_then(
    broker, worker, signals
):
    ok = example_tasks.add.enqueue(1, 2)
    bad = example_tasks.fail.enqueue("no")
    _done(broker)

    def of(result_id: str) -> list[tuple[str, type, str]]:
        return [(name, sender, status) for name, sender, id_, status in signals if id_ == result_id]

    assert of(ok.id) == [
        ("enqueued", SQSTaskBackend, TaskResultStatus.READY),
        ("started", SQSTaskBackend, TaskResultStatus.RUNNING),
        ("finished", SQSTaskBackend, TaskResultStatus.SUCCESSFUL),
    ]
    assert of(bad.id)[-1] == ("finished", SQSTaskBackend, TaskResultStatus.FAILED)


# --- retries, time limits, context ------------------------------------------------------------------------
def test_a_task_with_retries_is_ready_again_after_a_failure_and_keeps_every_attempts_error(broker, worker):
    result = example_tasks.flaky.enqueue(succeed_on=2)

    _done(broker)

    stored = example_tasks.flaky.get_result(result.id)
    assert stored.status == TaskResultStatus.SUCCESSFUL
    assert stored.return_value == 2  # the context's attempt number
    assert stored.attempts == 2
    assert [error.exception_class for error in stored.errors] == [ConnectionError]
    assert "attempt 1 fails" in stored.errors[0].traceback


def test_a_task_that_fails_every_retry_is_failed_once_its_retries_are_spent(broker, worker):
    result = example_tasks.flaky.enqueue(succeed_on=10)

    _done(broker)

    stored = example_tasks.flaky.get_result(result.id)
    assert stored.status == TaskResultStatus.FAILED
    assert stored.attempts == 3  # max_retries=2
    assert len(stored.errors) == 3


def test_a_task_past_its_time_limit_is_stopped_and_failed(broker, worker):
    broker.emit_after("process_boot")  # what a worker process does first: TimeLimit starts its watch
    result = example_tasks.hang.enqueue()

    _done(broker)

    stored = example_tasks.hang.get_result(result.id)
    assert stored.status == TaskResultStatus.FAILED
    assert stored.errors[0].exception_class_path == "dramatiq.middleware.time_limit.TimeLimitExceeded"


def test_a_return_value_json_cannot_hold_fails_the_task_with_a_clear_error(broker, worker):
    result = example_tasks.return_a_set.enqueue()

    _done(broker)

    stored = example_tasks.return_a_set.get_result(result.id)
    assert stored.status == TaskResultStatus.FAILED
    assert "the return value is a builtins.set, which JSON cannot hold" in stored.errors[0].traceback


def test_a_redelivered_message_of_a_task_that_succeeded_does_not_run_it_again(broker, worker):
    result = example_tasks.add.enqueue(2, 2)
    _done(broker)
    # The message as the backend sent it, delivered once more (SQS delivers at least once).
    message = Message(
        queue_name="default",
        actor_name=run_django_task.actor_name,
        args=(),
        kwargs={"result_id": result.id},
        options={},
        message_id=result.id,
    )

    broker.enqueue(message)
    _done(broker)

    assert example_tasks.add.get_result(result.id).attempts == 1


# --- deferring -----------------------------------------------------------------------------------------
def test_a_deferred_task_does_not_run_before_its_run_after(broker, worker):
    run_after = timezone.now() + dt.timedelta(seconds=2)
    result = example_tasks.add.using(run_after=run_after).enqueue(3, 4)

    assert broker.queue_counts("default")["delayed"] == 1
    _done(broker)

    stored = example_tasks.add.get_result(result.id)
    assert stored.status == TaskResultStatus.SUCCESSFUL
    assert stored.started_at >= run_after
    assert stored.task.run_after == run_after


def test_a_task_deferred_past_sqs_fifteen_minute_limit_is_accepted_and_waits_in_the_queue(broker):
    run_after = timezone.now() + dt.timedelta(hours=2)

    result = example_tasks.add.using(run_after=run_after).enqueue(3, 4)

    assert broker.queue_counts("default")["delayed"] == 1
    assert example_tasks.add.get_result(result.id).status == TaskResultStatus.READY


# --- refusing what cannot work ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("args", "kwargs", "said"),
    [
        ((dt.date(2026, 1, 1),), {}, "args[0] is a datetime.date, which JSON cannot hold"),
        ((), {"b": {1: "x"}}, "kwargs['b'] has the key 1, but JSON keys are strings"),
        ((float("nan"),), {}, "args[0] is nan, which JSON cannot hold"),
        ((), {"b": ["ok", b"bytes"]}, "kwargs['b'][1] is a builtins.bytes"),
        (("a\x00b",), {}, "args[0] holds a NUL character"),
    ],
)
def test_arguments_that_do_not_survive_a_json_round_trip_are_refused_at_enqueue_and_nothing_is_kept(
    args, kwargs, said
):
    with pytest.raises(InvalidTask, match="must come back the same from JSON") as refused:
        example_tasks.add.enqueue(*args, **kwargs)

    assert said in str(refused.value)
    assert "a model's primary key rather than the model" in str(refused.value)
    assert not TaskResultRecord.objects.exists()
    assert not OutboxMessage.objects.exists()


def test_priorities_are_refused_since_sqs_has_no_priority_order():
    with pytest.raises(InvalidTask, match="does not support setting priority"):
        example_tasks.add.using(priority=10)


def test_a_bad_task_option_is_refused_when_the_task_is_declared():
    with pytest.raises(InvalidTask, match="max_retries must be at least 0, not -1"):
        task(max_retries=-1)(example_tasks.add.func)


@pytest.mark.parametrize(
    ("options", "said"),
    [
        ({"max_retry": 3}, "unknown options ['max_retry']"),
        ({"time_limit": "60s"}, "time_limit must be a whole number, not '60s'"),
        ({"queue_map": ["default"]}, "must map queue names to queue names"),
        ({"min_backoff": 10_000, "max_backoff": 1_000}, "max_backoff must not be below min_backoff"),
    ],
)
def test_bad_options_stop_the_backend_with_an_error_naming_them(options, said):
    with pytest.raises(InvalidTaskBackend, match="TASKS\\['default'\\]\\['OPTIONS'\\]") as refused:
        SQSTaskBackend("default", {"OPTIONS": options})

    assert said in str(refused.value)


# --- options -----------------------------------------------------------------------------------------
def test_queue_map_sends_a_django_queue_to_another_dramatiq_queue(broker, worker, settings):
    settings.TASKS = {
        "default": {
            "BACKEND": "web.core.django_tasks.SQSTaskBackend",
            "OPTIONS": {"queue_map": {"default": "django-tasks"}},
        }
    }

    result = example_tasks.add.enqueue(5, 5)
    _done(broker, "django-tasks")

    assert example_tasks.add.get_result(result.id).return_value == 10
    assert TaskRun.objects.get(message_id=result.id).queue_name == "django-tasks"


def test_the_backends_max_retries_applies_to_tasks_that_set_none(broker, worker, settings):
    settings.TASKS = {
        "default": {
            "BACKEND": "web.core.django_tasks.SQSTaskBackend",
            "OPTIONS": {"max_retries": 1, "min_backoff": 1},
        }
    }

    result = example_tasks.fail.enqueue("again")
    _done(broker)

    stored = example_tasks.fail.get_result(result.id)
    assert stored.status == TaskResultStatus.FAILED
    assert stored.attempts == 2


# --- pruning -----------------------------------------------------------------------------------------
def test_the_daily_prune_deletes_results_that_finished_before_the_retention_and_keeps_waiting_ones(
    broker, worker, settings
):
    settings.TASK_RESULT_RETENTION_DAYS = 30
    now = timezone.now()
    ages = {"old": 31, "recent": 29, "old-but-waiting": 31}
    for result_id, days in ages.items():
        when = now - dt.timedelta(days=days)
        TaskResultRecord.objects.create(
            id=result_id,
            backend="default",
            task_path=example_tasks.add.module_path,
            queue_name="default",
            args=[1, 2],
            enqueued_at=when,
            status=TaskResultStatus.READY if result_id.endswith("waiting") else TaskResultStatus.SUCCESSFUL,
            finished_at=None if result_id.endswith("waiting") else when,
            return_value=3,
        )

    prune_task_runs.send()
    _done(broker)

    with pytest.raises(TaskResultDoesNotExist):
        example_tasks.add.get_result("old")
    assert example_tasks.add.get_result("recent").return_value == 3
    assert example_tasks.add.get_result("old-but-waiting").status == TaskResultStatus.READY


def test_a_worker_process_consumes_every_queue_the_backend_sends_to(broker, settings):
    settings.TASKS = {
        "default": {
            "BACKEND": "web.core.django_tasks.SQSTaskBackend",
            "QUEUES": ["default", "mail"],
            "OPTIONS": {"queue_map": {"mail": "django-mail"}},
        }
    }

    declare_django_task_queues(broker)  # what importing the actor does in a worker process

    assert {"default", "django-mail"} <= broker.get_declared_queues()


def test_an_empty_queues_setting_is_reported_by_the_system_checks():
    [warning] = SQSTaskBackend("default", {"QUEUES": []}).check()

    assert warning.id == "offload.W001"
    assert "workers only consume the queues they know" in warning.msg
