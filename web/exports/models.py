"""CSV exports of the snapshot history: who asked, how far the worker got, and where the file is."""

from __future__ import annotations

from django.conf import settings
from django.core.files.storage import Storage, storages
from django.db import models

from web.core.single_flight import RunStatus, SingleFlightRun, one_in_flight

#: What an export whose worker stopped says (stored as its error, shown as it is).
ABANDONED = "The worker stopped while writing this export. Start a new one."
#: What any other failed export tells its owner; the cause stays in `error` for logs and /ops/.
FAILED = "Something went wrong while writing this export. Start a new one."


def export_storage() -> Storage:
    """STORAGES["exports"]: private local files by default, S3 when configured (see settings)."""
    return storages["exports"]


class Export(SingleFlightRun):
    """One CSV export; one per owner is in flight at a time (the single-flight slot)."""

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="exports")
    # A done export is a file ready to download, and says so.
    status = models.CharField(
        max_length=10,
        choices=[(s.value, "Ready" if s == RunStatus.DONE else s.label) for s in RunStatus],
        default=RunStatus.QUEUED,
    )
    created_at = models.DateTimeField(db_index=True)
    # Moves with every saved chunk, so a stuck export can be told from a slow one.
    updated_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True, db_index=True)
    rows_total = models.PositiveIntegerField(null=True, blank=True)
    rows_written = models.PositiveIntegerField(default=0)
    # A name in export_storage(), looked up at each use rather than bound to a FileField's storage at
    # import time, so the storage can be reconfigured (and is, per test) without restarting.
    file_name = models.CharField(max_length=300, blank=True)
    size_bytes = models.PositiveBigIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        constraints = [one_in_flight("owner", name="one_export_in_flight_per_owner")]

    def __str__(self) -> str:
        return f"Export {self.pk} ({self.status})"

    @property
    def failure_message(self) -> str:
        """What the owner reads about a failed export: plain words, never the exception."""
        return ABANDONED if self.error == ABANDONED else FAILED

    @property
    def percent(self) -> int:
        if self.status == self.Status.DONE:
            return 100
        if not self.rows_total:
            return 0
        return min(100, self.rows_written * 100 // self.rows_total)
