"""Running a stored `django.tasks` task in a worker, and keeping its result (see django_tasks.py).

The worker side mirrors Django's ImmediateBackend: the record goes RUNNING (its attempt counted by the
worker's id) and `task_started` is sent; the task runs, coroutines included; the outcome is stored
SUCCESSFUL with its return value, or with the error and its traceback, and `task_finished` is sent
(from inside the `except`, so receivers see the exception). A failure that dramatiq will retry leaves
the record READY ("ready to run again") with the error kept; only the last attempt's failure is
FAILED. The exception then goes on to dramatiq, whose Retries middleware retries or dead-letters
the message as for any actor, and /ops/ shows the run.
"""

from __future__ import annotations

import logging
import os
import socket
import traceback
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.tasks import Task, TaskContext, TaskResult, task_backends
from django.tasks.base import TaskError, TaskResultStatus
from django.tasks.exceptions import TaskException
from django.tasks.signals import task_finished, task_started
from django.utils import timezone

from web.core.django_tasks import json_problem, result_from_record, stored_task
from web.core.models import TaskResultRecord

logger = logging.getLogger(__name__)

_FINISHED = (TaskResultRecord.Status.SUCCESSFUL, TaskResultRecord.Status.FAILED)


class ReturnValueNotJSON(TaskException):
    """Raised, and stored as the task's error, when a task returns a value JSON cannot hold."""


class MessageDiscarded(TaskException):
    """Stored as the error of a task whose message an operator discarded from the outbox: it never ran."""


def worker_id() -> str:
    """This process as a result's worker_ids name it: host and process id."""
    return f"{socket.gethostname()}:{os.getpid()}"


def task_result_run(*, result_id: str, last_attempt: bool) -> None:
    """Run the stored task `result_id` once, recording its outcome; raise what the task raised.

    `last_attempt`: no retry follows a failure, so a failure is final (FAILED, not READY).
    """
    record = _start(result_id)
    if record is None:
        return
    sender = type(task_backends[record.backend])
    try:
        task = stored_task(record)
    except Exception as e:
        # No Task, so no TaskResult for the signals: the record still says what went wrong.
        _record_failure(record, e, last_attempt=last_attempt)
        raise
    result = result_from_record(record, task)
    task_started.send(sender, task_result=result)
    try:
        value = _call(task, result)
    except KeyboardInterrupt:
        raise
    except BaseException as e:
        _record_failure(record, e, last_attempt=last_attempt, result=result)
        if result.status == TaskResultStatus.FAILED:
            task_finished.send(sender, task_result=result)
        raise
    now = timezone.now()
    TaskResultRecord.objects.filter(pk=record.pk).update(
        status=TaskResultRecord.Status.SUCCESSFUL, return_value=value, finished_at=now
    )
    object.__setattr__(result, "_return_value", value)
    object.__setattr__(result, "finished_at", now)
    object.__setattr__(result, "status", TaskResultStatus.SUCCESSFUL)
    task_finished.send(sender, task_result=result)


def task_result_prune(*, older_than: timedelta, now: datetime | None = None) -> int:
    """Delete results that finished before `older_than` ago; returns how many went.

    Results still waiting or running stay, however old: their tasks may yet run.
    """
    cutoff = (now or timezone.now()) - older_than
    deleted, _ = TaskResultRecord.objects.filter(status__in=_FINISHED, finished_at__lt=cutoff).delete()
    logger.info("Deleted %d task result(s) that finished before %s.", deleted, cutoff.isoformat())
    return deleted


def task_result_discarded(*, result_id: str, reason: str) -> None:
    """Fail a task still waiting to run whose message will never be sent (MessageDiscarded, `reason`)."""
    with transaction.atomic():
        record = (
            TaskResultRecord.objects.select_for_update()
            .filter(pk=result_id, status=TaskResultRecord.Status.READY)
            .first()
        )
        if record is not None:
            _record_failure(record, MessageDiscarded(reason), last_attempt=True)


def _start(result_id: str) -> TaskResultRecord | None:
    """Mark the record RUNNING for this attempt; None when there is nothing to run."""
    now = timezone.now()
    with transaction.atomic():
        record = TaskResultRecord.objects.select_for_update().filter(pk=result_id).first()
        if record is None:
            # Its transaction committed (the message exists only after commit), so it was pruned.
            logger.warning("Task result %r does not exist; nothing to run.", result_id)
            return None
        if record.status == TaskResultRecord.Status.SUCCESSFUL:
            # SQS delivers at least once: a task that succeeded is not run again.
            logger.info("Task result %r already succeeded; not running it again.", result_id)
            return None
        record.status = TaskResultRecord.Status.RUNNING
        record.started_at = record.started_at or now
        record.last_attempted_at = now
        record.finished_at = None
        record.worker_ids = [*record.worker_ids, worker_id()]
        record.save(update_fields=["status", "started_at", "last_attempted_at", "finished_at", "worker_ids"])
    return record


def _call(task: Task, result: TaskResult) -> Any:
    args, kwargs = result.args, result.kwargs
    if task.takes_context:
        args = [TaskContext(task_result=result), *args]
    # Task.call runs a coroutine function to completion in this thread's own event loop.
    value = task.call(*args, **kwargs)
    problem = json_problem(value, "the return value")
    if problem:
        raise ReturnValueNotJSON(f"Task {task.module_path!r} returned what cannot be stored: {problem}.")
    return value


def _record_failure(
    record: TaskResultRecord, error: BaseException, *, last_attempt: bool, result: TaskResult | None = None
) -> None:
    kind = type(error)
    entry = {
        "exception_class_path": f"{kind.__module__}.{kind.__qualname__}",
        "traceback": "".join(traceback.format_exception(error)),
    }
    status = TaskResultRecord.Status.FAILED if last_attempt else TaskResultRecord.Status.READY
    now = timezone.now()
    TaskResultRecord.objects.filter(pk=record.pk).update(
        status=status, errors=[*record.errors, entry], finished_at=now if last_attempt else None
    )
    if result is not None:
        result.errors.append(TaskError(**entry))
        object.__setattr__(result, "status", TaskResultStatus(status))
        object.__setattr__(result, "finished_at", now if last_attempt else None)
