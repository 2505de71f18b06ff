"""What the scheduler keeps in the database: who leads, and which (job, slot) runs were enqueued."""

from __future__ import annotations

from django.db import models


class SchedulerLease(models.Model):
    """The leader's lease. Only the holder may enqueue, until expires_at unless it renews.

    A row with an empty holder or a past expires_at is free: whoever updates it first leads.
    """

    name = models.CharField(max_length=100, unique=True)
    holder = models.CharField(max_length=200, blank=True)
    acquired_at = models.DateTimeField(null=True, blank=True)
    renewed_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"Lease {self.name!r} held by {self.holder or 'nobody'} until {self.expires_at:%H:%M:%S}"


class ScheduledRun(models.Model):
    """One run of a scheduled job for one slot (the time the schedule named, not when it ran).

    The unique (job, slot) pair is what makes a slot's job enqueue once, even if two schedulers
    both believe they lead: the second insert fails and that scheduler skips the slot.
    """

    class Status(models.TextChoices):
        CLAIMED = "claimed", "Claimed"
        ENQUEUED = "enqueued", "Enqueued"
        FAILED = "failed", "Failed to enqueue"

    job = models.CharField(max_length=100)
    slot = models.DateTimeField()
    status = models.CharField(max_length=20, choices=Status, default=Status.CLAIMED)
    holder = models.CharField(max_length=200)
    claimed_at = models.DateTimeField()
    enqueued_at = models.DateTimeField(null=True, blank=True)
    message_id = models.CharField(max_length=100, blank=True)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-slot"]
        constraints = [models.UniqueConstraint(fields=["job", "slot"], name="one_run_per_job_and_slot")]

    def __str__(self) -> str:
        return f"{self.job} at {self.slot:%Y-%m-%d %H:%M:%S} ({self.status})"
