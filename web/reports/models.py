"""Precomputed report snapshots: each run of the slow aggregate, its status and its result."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from web.core.single_flight import SingleFlightRun, one_in_flight

#: What a run no worker finished in time says (the worker died, or the message was lost).
ABANDONED = "No worker finished this run in time; it was given up so a new one could start."
#: What any other failed run tells visitors; the cause stays in `error` for logs and /ops/.
FAILED = "Something went wrong while computing the report. Try again later."


class ReportRun(SingleFlightRun):
    """One computation of the stars report, from the click (or the schedule) to its result."""

    kind = models.CharField(max_length=40, default="stars")
    requested_at = models.DateTimeField()
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    rows_scanned = models.PositiveIntegerField(default=0)
    result = models.JSONField(null=True, blank=True)

    class Meta:
        ordering = ["-requested_at"]
        # Two clicks, or a click and the hourly schedule, racing each other start one run.
        constraints = [one_in_flight("kind", name="one_report_run_in_flight_per_kind")]

    def __str__(self) -> str:
        return f"Report run {self.pk} ({self.status})"

    @property
    def failure_message(self) -> str:
        """What visitors read about a failed run: plain words, never the exception."""
        return ABANDONED if self.error == ABANDONED else FAILED
