"""CSV exports of the snapshot history: who asked, how far the worker got, and where the file is."""

from __future__ import annotations

from django.conf import settings
from django.core.files.storage import Storage, storages
from django.db import models
from django.db.models import Q


def export_storage() -> Storage:
    """STORAGES["exports"]: private local files by default, S3 when configured (see settings)."""
    return storages["exports"]


class Export(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        DONE = "done", "Ready"
        FAILED = "failed", "Failed"

    #: The states in which an export still holds its owner's single slot.
    IN_FLIGHT = (Status.QUEUED, Status.RUNNING)

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="exports")
    status = models.CharField(max_length=10, choices=Status, default=Status.QUEUED)
    created_at = models.DateTimeField(db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    # Moves with every saved chunk, so a stuck export can be told from a slow one.
    updated_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True, db_index=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    rows_total = models.PositiveIntegerField(null=True, blank=True)
    rows_written = models.PositiveIntegerField(default=0)
    # A name in export_storage(), looked up at each use rather than bound to a FileField's storage at
    # import time, so the storage can be reconfigured (and is, per test) without restarting.
    file_name = models.CharField(max_length=300, blank=True)
    size_bytes = models.PositiveBigIntegerField(null=True, blank=True)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        constraints = [
            # One export at a time per user, decided by the database so double clicks cannot race.
            models.UniqueConstraint(
                fields=["owner"],
                condition=Q(status__in=["queued", "running"]),
                name="one_export_in_flight_per_owner",
            )
        ]

    def __str__(self) -> str:
        return f"Export {self.pk} ({self.status})"

    @property
    def in_flight(self) -> bool:
        return self.status in self.IN_FLIGHT

    @property
    def percent(self) -> int:
        if self.status == self.Status.DONE:
            return 100
        if not self.rows_total:
            return 0
        return min(100, self.rows_written * 100 // self.rows_total)
