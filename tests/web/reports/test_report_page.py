from __future__ import annotations

import threading
import uuid
from datetime import timedelta

import pytest
from django.db import IntegrityError, connections
from django.utils import timezone

from tasks.regenerate_report import regenerate_report
from tests.waiting import sent_and_done
from web.core.enqueue import wait_for_background_sends
from web.reports.demo_data import demo_history_create
from web.reports.models import ReportRun
from web.reports.services import ABANDONED, report_request


@pytest.fixture
def user(django_user_model):
    name = f"u{uuid.uuid4().hex[:8]}"
    return django_user_model.objects.create_user(
        username=name, email=f"{name}@example.com", password="pw-123456!"
    )


def queued_messages(broker) -> int:
    url = broker.queue_url(regenerate_report.queue_name)
    attributes = broker.client.get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"]
    )
    return int(attributes["Attributes"]["ApproximateNumberOfMessages"])


@pytest.mark.django_db
def test_before_any_report_the_page_says_none_was_computed_and_asks_visitors_to_log_in(client):
    response = client.get("/reports/")

    page = response.content.decode()
    assert response.status_code == 200
    assert "No report has been computed yet." in page
    assert "to regenerate the report" in page


@pytest.mark.django_db(transaction=True)
def test_regenerate_computes_the_report_in_a_worker_and_the_page_shows_it_with_a_chart(
    client, user, broker, worker
):
    demo_history_create(polls=6, end=timezone.now())
    client.force_login(user)

    response = client.post("/reports/regenerate/", follow=True)
    assert "The report is being regenerated" in response.content.decode()
    sent_and_done(broker, regenerate_report)
    page = client.get("/reports/").content.decode()

    run = ReportRun.objects.get()
    assert run.status == ReportRun.Status.DONE
    assert "Computed <time" in page
    assert "over 600 snapshot rows" in page
    assert page.count("<svg") == 2
    assert "Stars gained by repository, last 7 days" in page
    top = run.result["windows"][0]["repositories"][0]["full_name"]
    assert top in page
    assert "A regeneration is" not in page


@pytest.mark.django_db(transaction=True)
def test_a_second_click_while_a_run_is_queued_does_not_start_another(client, user, broker):
    client.force_login(user)

    client.post("/reports/regenerate/")
    response = client.post("/reports/regenerate/", follow=True)

    page = response.content.decode()
    assert wait_for_background_sends()
    assert ReportRun.objects.count() == 1
    assert queued_messages(broker) == 1
    assert "A regeneration is already queued" in page
    assert "not starting another" in page
    assert "disabled" in page


@pytest.mark.django_db
def test_the_database_refuses_a_second_run_in_flight():
    ReportRun.objects.create(requested_at=timezone.now())

    with pytest.raises(IntegrityError):
        ReportRun.objects.create(requested_at=timezone.now(), status=ReportRun.Status.RUNNING)


@pytest.mark.django_db(transaction=True)
def test_a_run_left_in_flight_too_long_is_given_up_so_a_new_one_can_start(client, broker, settings):
    settings.REPORT_STALE_AFTER_MS = 60_000
    stuck = ReportRun.objects.create(
        requested_at=timezone.now() - timedelta(minutes=5), status=ReportRun.Status.RUNNING
    )

    run, created = report_request()

    stuck.refresh_from_db()
    assert created
    assert run.status == ReportRun.Status.QUEUED
    assert stuck.status == ReportRun.Status.FAILED
    assert ABANDONED in client.get("/reports/").content.decode()


@pytest.mark.django_db
def test_anonymous_visitors_cannot_regenerate(client):
    response = client.post("/reports/regenerate/")

    assert response.status_code == 302
    assert "/accounts/login/" in response["Location"]
    assert not ReportRun.objects.exists()


@pytest.mark.django_db
def test_the_status_panel_keeps_polling_while_a_run_is_in_flight_and_reloads_the_page_after(client):
    run = ReportRun.objects.create(requested_at=timezone.now())

    polling = client.get("/reports/status/")
    run.status = ReportRun.Status.DONE
    run.save()
    finished = client.get("/reports/status/")

    assert 'hx-trigger="every 2s"' in polling.content.decode()
    assert "HX-Refresh" not in polling
    assert finished["HX-Refresh"] == "true"


@pytest.mark.django_db
def test_a_failure_newer_than_the_last_report_is_shown_with_its_error(client):
    now = timezone.now()
    ReportRun.objects.create(
        requested_at=now,
        finished_at=now,
        status=ReportRun.Status.FAILED,
        error="OperationalError: disk I/O error",
    )

    page = client.get("/reports/").content.decode()

    assert "The last regeneration failed" in page
    assert "Something went wrong while computing the report. Try again later." in page
    assert "disk I/O error" not in page, "the cause is for operators, not on the page"


@pytest.mark.django_db(transaction=True)
def test_clicks_racing_each_other_start_exactly_one_run(broker):
    racers = 6
    start = threading.Barrier(racers)
    results: list[bool] = []

    def click() -> None:
        try:
            start.wait(timeout=10)
            _, created = report_request()
            results.append(created)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=click) for _ in range(racers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert sorted(results) == [False] * (racers - 1) + [True]
    assert ReportRun.objects.count() == 1
