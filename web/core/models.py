"""The transactional outbox: messages written in the same transaction as the data they are about."""

from __future__ import annotations

from django.db import models


class OutboxMessage(models.Model):
    """A dramatiq message waiting to reach SQS.

    Every enqueue from Django writes one of these in the caller's transaction. After the commit the
    message is sent and its row deleted; a row that is still here after `available_at` was not sent
    (SQS unreachable, process killed) and the relay sends it. A row SQS keeps refusing is set aside
    (`set_aside_at`) with its reason, for an operator to send again or discard on /ops/.
    """

    queue_name = models.CharField(max_length=200)
    actor_name = models.CharField(max_length=200)
    message_id = models.CharField(max_length=64, unique=True)
    body = models.TextField()
    delay_ms = models.PositiveBigIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    #: When the relay may take the row: a grace period after creation, then after each failed attempt.
    available_at = models.DateTimeField(db_index=True)
    #: Which relay run took the row last, so several relays never send the same row at once.
    claim = models.CharField(max_length=32, blank=True, default="")
    #: Relay attempts at the row; an attempt that could not reach SQS at all is not counted.
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True, default="")
    #: When the relay gave up on the row after OUTBOX_MAX_ATTEMPTS refusals; it stays until an operator acts.
    set_aside_at = models.DateTimeField(null=True, blank=True, db_index=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.actor_name} {self.message_id}"


class TaskResultRecord(models.Model):
    """The stored state of one `django.tasks` task enqueued through SQSTaskBackend (django_tasks.py).

    Written READY in the caller's transaction at enqueue; the worker moves it to RUNNING and then to
    SUCCESSFUL or FAILED (or back to READY when a retry follows). `get_result` reads it back from any
    process. The id is the dramatiq message's id, so /ops/ task runs and dead letters name it too.
    """

    class Status(models.TextChoices):
        # The values are django.tasks.TaskResultStatus's.
        READY = "READY", "Ready"
        RUNNING = "RUNNING", "Running"
        FAILED = "FAILED", "Failed"
        SUCCESSFUL = "SUCCESSFUL", "Successful"

    id = models.CharField(primary_key=True, max_length=64)
    #: The TASKS alias the task was enqueued through.
    backend = models.CharField(max_length=100)
    #: Where the Task object is found when it runs: "module.function".
    task_path = models.CharField(max_length=300)
    queue_name = models.CharField(max_length=100)
    run_after = models.DateTimeField(null=True, blank=True)
    args = models.JSONField(default=list)
    kwargs = models.JSONField(default=dict)
    status = models.CharField(max_length=10, choices=Status, default=Status.READY, db_index=True)
    enqueued_at = models.DateTimeField()
    started_at = models.DateTimeField(null=True, blank=True)
    last_attempted_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True, db_index=True)
    return_value = models.JSONField(null=True, blank=True)
    #: One {"exception_class_path", "traceback"} per failed attempt, oldest first.
    errors = models.JSONField(default=list)
    #: One entry per attempt: the worker (host:pid) that made it.
    worker_ids = models.JSONField(default=list)

    class Meta:
        ordering = ["-enqueued_at"]

    def __str__(self) -> str:
        return f"{self.task_path} {self.id} ({self.status})"
