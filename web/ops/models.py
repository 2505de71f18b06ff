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
