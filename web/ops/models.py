"""One row per dramatiq message the workers ran: what operators see, and what makes a redelivery harmless."""

from __future__ import annotations

from django.db import models


class TaskRun(models.Model):
    class Status(models.TextChoices):
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        RETRYING = "retrying", "Failed, will retry"
        FAILED = "failed", "Failed"
        SKIPPED = "skipped", "Skipped"

    #: Retries keep the message id, so a message's attempts all update this one row.
    message_id = models.CharField(max_length=64, unique=True)
    actor_name = models.CharField(max_length=200, db_index=True)
    queue_name = models.CharField(max_length=200)
    status = models.CharField(max_length=10, choices=Status, default=Status.RUNNING, db_index=True)
    attempts = models.PositiveIntegerField(default=1)
    #: Deliveries of an already succeeded message that were acknowledged without running it again.
    duplicates = models.PositiveIntegerField(default=0)
    started_at = models.DateTimeField(db_index=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    duration_ms = models.PositiveBigIntegerField(null=True, blank=True)
    error = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["-started_at", "-id"]

    def __str__(self) -> str:
        return f"{self.actor_name} {self.message_id} ({self.status})"


class QueueDepthSample(models.Model):
    """A queue's approximate counts at one moment, taken every minute (the scheduler asks) for /ops/."""

    queue_name = models.CharField(max_length=200)
    sampled_at = models.DateTimeField(db_index=True)
    visible = models.PositiveIntegerField()
    in_flight = models.PositiveIntegerField()
    delayed = models.PositiveIntegerField()
    dead_letters = models.PositiveIntegerField()

    class Meta:
        ordering = ["sampled_at", "id"]

    def __str__(self) -> str:
        return f"{self.queue_name} at {self.sampled_at:%Y-%m-%d %H:%M}: {self.visible} visible"


class DeadLetterRedrive(models.Model):
    """An operator's "retry all" of a queue's dead letters, run as a background job, and how it went."""

    class Status(models.TextChoices):
        WAITING = "waiting", "Waiting for a worker"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    queue_name = models.CharField(max_length=200)
    requested_by = models.CharField(max_length=254, blank=True)
    requested_at = models.DateTimeField(db_index=True)
    status = models.CharField(max_length=10, choices=Status, default=Status.WAITING)
    finished_at = models.DateTimeField(null=True, blank=True)
    #: Dead letters sent back so far.
    moved = models.PositiveIntegerField(default=0)
    #: What went wrong, in words for an operator.
    error = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["-requested_at", "-id"]

    def __str__(self) -> str:
        return f"Redrive of {self.queue_name} ({self.status})"
