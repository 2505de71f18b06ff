"""SQSTaskBackend: Django's own task API (`django.tasks`) on offload's broker, results in the database.

    TASKS = {"default": {"BACKEND": "web.core.django_tasks.SQSTaskBackend"}}

    @task
    def add(a, b):
        return a + b

    result = add.enqueue(2, 3)          # after commit, like enqueue_on_commit
    add.get_result(result.id).status    # READY, RUNNING, then SUCCESSFUL or FAILED

`enqueue` writes a TaskResultRecord (READY: the task's path, arguments and options) and an outbox row
for one dramatiq message of the `run_django_task` actor, both in the caller's transaction; the message
carries nothing but the record's id, which is also the message's own id. After the commit the message
goes to SQS with the request's other messages, or through the relay when SQS is down, so a
rolled-back transaction enqueues nothing and a committed one loses nothing. Any worker (the
long-running one or the Lambda handler) runs it: task_results.py loads the record, imports the task by
its path, runs it, and stores the outcome where `get_result` reads it from any process.

Retries, backoff and time limits are dramatiq's (Retries, TimeLimit), set per message from the
backend's OPTIONS or the task's own options (`@task(max_retries=3)`); a Django task runs once by
default, as with Django's own backends. `run_after` becomes the message's delay, which the broker
keeps for any length (SQS alone stops at 15 minutes).
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import partial
from typing import Any

from django.core import checks
from django.db import transaction
from django.tasks import Task, TaskResult, TaskResultStatus
from django.tasks.backends.base import BaseTaskBackend
from django.tasks.base import TaskError
from django.tasks.exceptions import InvalidTask, InvalidTaskBackend, TaskResultDoesNotExist
from django.tasks.signals import task_enqueued
from django.utils import timezone
from django.utils.module_loading import import_string
from dramatiq import Message

#: A Django task runs once unless asked otherwise, as with Django's own backends.
DEFAULT_MAX_RETRIES = 0
#: The options a task (`@task(...)`) and a backend's OPTIONS may set, all whole numbers; durations in ms.
MESSAGE_OPTIONS = ("max_retries", "min_backoff", "max_backoff", "time_limit")
#: OPTIONS keys a backend accepts.
BACKEND_OPTIONS = (*MESSAGE_OPTIONS, "queue_map")
#: What arguments and return values may hold, for the error messages.
_JSON_HINT = (
    "pass plain values (str, int, float, bool, None, and lists and dicts with str keys of them), "
    "e.g. a model's primary key rather than the model"
)


@dataclass(frozen=True, slots=True, kw_only=True)
class SQSTask(Task):
    """A Task that may carry dramatiq's options: `@task(max_retries=3, min_backoff=5_000, time_limit=60_000)`.

    Each overrides the backend's OPTIONS for this task; None leaves it to them. Durations in ms.
    """

    max_retries: int | None = None
    min_backoff: int | None = None
    max_backoff: int | None = None
    time_limit: int | None = None


@dataclass(frozen=True)
class BackendOptions:
    """A backend's OPTIONS, checked."""

    max_retries: int = DEFAULT_MAX_RETRIES
    #: None: the Retries middleware's own backoff (15 s, doubling, at most 7 days).
    min_backoff: int | None = None
    max_backoff: int | None = None
    #: None: the TimeLimit middleware's own limit (10 minutes).
    time_limit: int | None = None
    #: Django queue name -> dramatiq queue name; a name not listed is the same in both.
    queue_map: dict[str, str] = field(default_factory=dict)


class SQSTaskBackend(BaseTaskBackend):
    """Runs `django.tasks` tasks on the dramatiq workers through SQS; results in TaskResultRecord.

    OPTIONS (all optional): max_retries (default 0), min_backoff and max_backoff (ms), time_limit (ms),
    queue_map ({Django queue name: dramatiq queue name}). QUEUES, as in Django, lists the queue names
    tasks may use (default ["default"]).
    """

    task_class = SQSTask
    supports_defer = True
    supports_async_task = True
    supports_get_result = True
    # Priority is not offered: SQS has no ordering by priority, and Django then refuses priorities.
    supports_priority = False

    def __init__(self, alias: str, params: dict[str, Any]) -> None:
        super().__init__(alias, params)
        self.settings = _backend_options(alias, self.options)

    # --- what Django asks of a backend ------------------------------------------------------------
    def validate_task(self, task: Task) -> None:
        super().validate_task(task)
        for name in MESSAGE_OPTIONS:
            problem = _option_problem(name, getattr(task, name, None))
            if problem:
                raise InvalidTask(f"Task {task.module_path!r}: {problem}")

    def enqueue(self, task: Task, args: Iterable[Any], kwargs: Mapping[str, Any]) -> TaskResult:
        """Store the task READY and send its message once the current transaction commits."""
        from tasks.run_django_task import run_django_task
        from web.core.enqueue import enqueue_message_on_commit
        from web.core.models import TaskResultRecord

        self.validate_task(task)
        args, kwargs = list(args), dict(kwargs)
        problem = json_problem(args, "args") or json_problem(kwargs, "kwargs")
        if problem:
            raise InvalidTask(
                f"The arguments of task {task.module_path!r} must come back the same from JSON: "
                f"{problem}; {_JSON_HINT}."
            )
        result_id = str(uuid.uuid4())
        queue_name = self.dramatiq_queue(task.queue_name)
        broker = run_django_task.broker
        broker.declare_queue(queue_name)
        message = Message(
            queue_name=queue_name,
            actor_name=run_django_task.actor_name,
            args=(),
            kwargs={"result_id": result_id},
            options=self.message_options(task),
            message_id=result_id,
        )
        now = timezone.now()
        with transaction.atomic():
            TaskResultRecord.objects.create(
                id=result_id,
                backend=self.alias,
                task_path=task.module_path,
                queue_name=task.queue_name,
                run_after=task.run_after,
                args=args,
                kwargs=kwargs,
                enqueued_at=now,
            )
            enqueue_message_on_commit(message, broker=broker, delay=_delay_ms(task.run_after, now))
        result = TaskResult(
            task=task,
            id=result_id,
            status=TaskResultStatus.READY,
            enqueued_at=now,
            started_at=None,
            last_attempted_at=None,
            finished_at=None,
            args=args,
            kwargs=kwargs,
            backend=self.alias,
            errors=[],
            worker_ids=[],
        )
        # Enqueued means sent: a transaction that rolls back enqueued nothing, and says nothing.
        transaction.on_commit(partial(task_enqueued.send, type(self), task_result=result))
        return result

    def get_result(self, result_id: str) -> TaskResult:
        """The task's stored result as it is now; raises TaskResultDoesNotExist for an unknown id."""
        from web.core.models import TaskResultRecord

        record = TaskResultRecord.objects.filter(pk=str(result_id), backend=self.alias).first()
        if record is None:
            raise TaskResultDoesNotExist(result_id)
        return result_from_record(record, stored_task(record))

    def check(self, **kwargs: Any) -> list[checks.CheckMessage]:
        if self.queues:
            return []
        return [
            checks.Warning(
                f"TASKS[{self.alias!r}] has an empty QUEUES, so tasks may name any queue, but workers "
                "only consume the queues they know.",
                hint="List the queue names tasks use in QUEUES.",
                id="offload.W001",
            )
        ]

    # --- what the worker side asks ----------------------------------------------------------------
    def dramatiq_queue(self, queue_name: str) -> str:
        """The dramatiq queue that carries tasks of a Django queue."""
        return self.settings.queue_map.get(queue_name, queue_name)

    def dramatiq_queues(self) -> set[str]:
        """Every dramatiq queue this backend sends to: what workers must consume."""
        return {self.dramatiq_queue(name) for name in self.queues} | set(self.settings.queue_map.values())

    def message_options(self, task: Task) -> dict[str, int]:
        """dramatiq's options for the task's message: the task's own, else the backend's."""
        options: dict[str, int] = {}
        for name in MESSAGE_OPTIONS:
            value = getattr(task, name, None)
            if value is None:
                value = getattr(self.settings, name)
            if value is not None:
                options[name] = value
        return options


# --- results ---------------------------------------------------------------------------------------
def stored_task(record: Any) -> Task:
    """The Task a record names, with the queue, run_after and backend it was enqueued with.

    Raises InvalidTask when the path no longer names a task (the code changed since).
    """
    try:
        task = import_string(record.task_path)
    except ImportError as e:
        raise InvalidTask(
            f"Task result {record.id!r} names {record.task_path!r}, which cannot be imported: {e}"
        ) from e
    if not isinstance(task, Task):
        raise InvalidTask(f"Task result {record.id!r} names {record.task_path!r}, which is not a task.")
    return replace(task, queue_name=record.queue_name, run_after=record.run_after, backend=record.backend)


def result_from_record(record: Any, task: Task) -> TaskResult:
    """The django.tasks TaskResult a TaskResultRecord stands for."""
    result = TaskResult(
        task=task,
        id=record.id,
        status=TaskResultStatus(record.status),
        enqueued_at=record.enqueued_at,
        started_at=record.started_at,
        last_attempted_at=record.last_attempted_at,
        finished_at=record.finished_at,
        args=record.args,
        kwargs=record.kwargs,
        backend=record.backend,
        errors=[TaskError(**error) for error in record.errors],
        worker_ids=list(record.worker_ids),
    )
    object.__setattr__(result, "_return_value", record.return_value)  # as Django's own backends do
    return result


# --- checking values ---------------------------------------------------------------------------------
def json_problem(value: Any, where: str) -> str | None:
    """Why `value` would not come back the same from JSON and the database, or None when it would.

    Tuples count as lists, as django.tasks itself passes them on.
    """
    if isinstance(value, str):
        return f"{where} holds a NUL character, which the database cannot store" if "\x00" in value else None
    if isinstance(value, float) and not math.isfinite(value):
        return f"{where} is {value!r}, which JSON cannot hold"
    if value is None or isinstance(value, (bool, int, float)):
        return None
    if isinstance(value, (list, tuple)):
        return next(filter(None, (json_problem(item, f"{where}[{i}]") for i, item in enumerate(value))), None)
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                back = str(key)
                return f"{where} has the key {key!r}, but JSON keys are strings: it comes back as {back!r}"
            problem = json_problem(key, f"a key of {where}") or json_problem(item, f"{where}[{key!r}]")
            if problem:
                return problem
        return None
    kind = type(value)
    return f"{where} is a {kind.__module__}.{kind.__qualname__}, which JSON cannot hold"


def _option_problem(name: str, value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        return f"{name} must be a whole number, not {value!r}."
    lowest = 0 if name == "max_retries" else 1
    if value < lowest:
        return f"{name} must be at least {lowest}, not {value}."
    return None


def _backend_options(alias: str, options: Mapping[str, Any]) -> BackendOptions:
    where = f"TASKS[{alias!r}]['OPTIONS']"
    unknown = sorted(set(options) - set(BACKEND_OPTIONS))
    if unknown:
        raise InvalidTaskBackend(f"{where} has unknown options {unknown}; known: {list(BACKEND_OPTIONS)}.")
    for name in MESSAGE_OPTIONS:
        problem = _option_problem(name, options.get(name))
        if problem:
            raise InvalidTaskBackend(f"{where}: {problem}")
    queue_map = options.get("queue_map", {})
    if not isinstance(queue_map, dict) or not all(
        isinstance(key, str) and isinstance(value, str) and key and value for key, value in queue_map.items()
    ):
        raise InvalidTaskBackend(
            f"{where}['queue_map'] must map queue names to queue names, not {queue_map!r}."
        )
    chosen = BackendOptions(**{**options, "queue_map": dict(queue_map)})
    if chosen.min_backoff and chosen.max_backoff and chosen.max_backoff < chosen.min_backoff:
        raise InvalidTaskBackend(f"{where}: max_backoff must not be below min_backoff.")
    return chosen


def _delay_ms(run_after: datetime | None, now: datetime) -> int | None:
    if run_after is None or run_after <= now:
        return None
    return math.ceil((run_after - now).total_seconds() * 1000)
