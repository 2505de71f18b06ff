"""Recompute the stars report: on the reports page's button (with a run id) and hourly (without)."""

from __future__ import annotations

import dramatiq

from web.reports.services import report_regenerate

#: Far above the report's run time at a year of 10-minute polls; a stuck scan is stopped, not waited on.
TIME_LIMIT_MS = 10 * 60 * 1000


@dramatiq.actor(max_retries=2, min_backoff=5_000, time_limit=TIME_LIMIT_MS)
def regenerate_report(run_id: int | None = None) -> None:
    report_regenerate(run_id=run_id)
