"""Precomputed report snapshots: each run of the slow aggregate, its status and its result."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q


class ReportRun(models.Model):
    """One computation of the stars report, from the click (or the schedule) to its result."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    #: The states in which a run still holds the single-flight slot.
    IN_FLIGHT = (Status.QUEUED, Status.RUNNING)

    kind = models.CharField(max_length=40, default="stars")
    status = models.CharField(max_length=10, choices=Status, default=Status.QUEUED)
    requested_at = models.DateTimeField()
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    rows_scanned = models.PositiveIntegerField(default=0)
    result = models.JSONField(null=True, blank=True)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-requested_at"]
        constraints = [
            # Single flight lives in the database, not in the view: two clicks (or a click and the
            # hourly schedule) racing each other cannot both insert an in-flight run.
            models.UniqueConstraint(
                fields=["kind"],
                condition=Q(status__in=["queued", "running"]),
                name="one_report_run_in_flight_per_kind",
            )
        ]

    def __str__(self) -> str:
        return f"Report run {self.pk} ({self.status})"

    @property
    def in_flight(self) -> bool:
        return self.status in self.IN_FLIGHT
