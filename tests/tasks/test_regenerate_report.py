from __future__ import annotations

import pytest
from django.utils import timezone

from tasks.regenerate_report import regenerate_report
from web.reports.demo_data import demo_history_create
from web.reports.models import ReportRun
from web.reports.services import report_regenerate


@pytest.mark.django_db(transaction=True)
def test_a_clicked_run_delivered_twice_is_computed_once(broker, worker):
    demo_history_create(polls=3, end=timezone.now())
    run = ReportRun.objects.create(requested_at=timezone.now())
    message = regenerate_report.message(run_id=run.pk)

    broker.enqueue(message)
    broker.enqueue(message)
    broker.join(regenerate_report.queue_name, timeout=30_000)

    run.refresh_from_db()
    assert run.status == ReportRun.Status.DONE
    assert run.attempts == 1
    assert run.rows_scanned == 300
    assert ReportRun.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_the_scheduled_message_delivered_twice_makes_one_report(broker, worker):
    demo_history_create(polls=3, end=timezone.now())
    message = regenerate_report.message()

    broker.enqueue(message)
    broker.enqueue(message)
    broker.join(regenerate_report.queue_name, timeout=30_000)

    run = ReportRun.objects.get()
    assert run.status == ReportRun.Status.DONE
    assert run.result["rows_scanned"] == 300


@pytest.mark.django_db
def test_the_schedule_skips_while_a_clicked_run_is_in_flight():
    ReportRun.objects.create(requested_at=timezone.now())

    assert report_regenerate(run_id=None) is None
    assert ReportRun.objects.count() == 1


@pytest.mark.django_db
def test_the_schedule_runs_again_once_the_last_report_is_older_than_the_minimum_interval(settings):
    settings.REPORT_MIN_INTERVAL_MS = 0
    first = report_regenerate(run_id=None)

    second = report_regenerate(run_id=None)

    assert first is not None
    assert second is not None
    assert first.pk != second.pk
    assert second.status == ReportRun.Status.DONE


@pytest.mark.django_db
def test_running_a_clicked_run_a_second_time_does_nothing():
    run = ReportRun.objects.create(requested_at=timezone.now())

    first = report_regenerate(run_id=run.pk)
    second = report_regenerate(run_id=run.pk)

    assert first is not None
    assert second is None
    run.refresh_from_db()
    assert run.attempts == 1
