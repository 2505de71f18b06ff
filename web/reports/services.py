"""Writes for reports: ask for a regeneration (single flight) and run one."""

from __future__ import annotations

import logging
import time
from datetime import timedelta

from django.conf import settings
from django.contrib.auth.base_user import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from web.core.enqueue import enqueue_on_commit
from web.core.single_flight import run_claim, run_fail, run_start, runs_abandon
from web.reports.models import ABANDONED, ReportRun
from web.reports.stars import stars_report

logger = logging.getLogger(__name__)


def report_request(*, requested_by: AbstractBaseUser | None = None) -> tuple[ReportRun, bool]:
    """Queue a regeneration unless one is already queued or running.

    Returns the run that is in flight now and whether this call created it. The database's partial
    unique constraint decides, so two concurrent requests cannot both create one.
    """
    # Imported here because the actor's module imports this one (tasks -> web services).
    from tasks.regenerate_report import regenerate_report

    return run_start(
        ReportRun.objects.all(),
        create=lambda: ReportRun.objects.create(requested_at=timezone.now(), requested_by=requested_by),
        stale=_stale(),
        abandoned=ABANDONED,
        started=lambda run: enqueue_on_commit(regenerate_report, run_id=run.pk),
    )


def report_regenerate(*, run_id: int | None) -> ReportRun | None:
    """Run the report for a queued run, or for the schedule (run_id None). Safe to call twice.

    Returns the finished run, or None when there was nothing to do: the run was already taken (a second
    delivery of the same message), or, for the schedule, a run is in flight or one finished recently.
    """
    if run_id is not None:
        run = run_claim(ReportRun.objects.all(), run_id=run_id)
    else:
        run = _claim_scheduled()
    if run is None:
        return None
    started = time.monotonic()
    try:
        result = stars_report()
    except BaseException as e:
        # BaseException: dramatiq's time limit interrupts the thread with one, and the run must not
        # stay "running" when that happens.
        run_fail(
            ReportRun.objects.all(),
            run_id=run.pk,
            error=e,
            duration_ms=int((time.monotonic() - started) * 1000),
        )
        raise  # the actor's retries claim the failed run again
    ReportRun.objects.filter(pk=run.pk).update(
        status=ReportRun.Status.DONE,
        finished_at=timezone.now(),
        duration_ms=int((time.monotonic() - started) * 1000),
        rows_scanned=result["rows_scanned"],
        result=result,
        error="",
    )
    run.refresh_from_db()
    logger.info("Report run %r scanned %d rows in %d ms.", run.pk, run.rows_scanned, run.duration_ms)
    return run


def _claim_scheduled() -> ReportRun | None:
    now = timezone.now()
    fresh_since = now - timedelta(milliseconds=settings.REPORT_MIN_INTERVAL_MS)
    with transaction.atomic():
        runs_abandon(ReportRun.objects.all(), stale=_stale(), error=ABANDONED)
        # Also what makes a repeated scheduled message harmless: the second finds the first's run.
        if (
            ReportRun.objects.filter(requested_at__gte=fresh_since)
            .exclude(status=ReportRun.Status.FAILED)
            .exists()
        ):
            logger.info("A report run was requested since %s; skipping the scheduled one.", fresh_since)
            return None
        try:
            with transaction.atomic():
                return ReportRun.objects.create(
                    status=ReportRun.Status.RUNNING, requested_at=now, started_at=now, attempts=1
                )
        except IntegrityError:
            logger.info("A report run is in flight; skipping the scheduled one.")
            return None


def _stale() -> Q:
    """Runs requested longer than REPORT_STALE_AFTER_MS ago: no report takes that long."""
    return Q(requested_at__lt=timezone.now() - timedelta(milliseconds=settings.REPORT_STALE_AFTER_MS))
