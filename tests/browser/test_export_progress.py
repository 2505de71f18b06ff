from __future__ import annotations

import csv
import queue
import threading
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.dispatch import receiver
from django.utils import timezone
from playwright.sync_api import Page, expect

from web.exports.signals import export_progressed
from web.reports.demo_data import demo_history_create
from web.trending.models import RepositorySnapshot

pytestmark = pytest.mark.usefixtures("export_dir")

#: How long the worker waits for the test to let it go on, in seconds (the test fails rather than hangs).
STEP_TIMEOUT_S = 30


@pytest.fixture
def logged_in_page(page: Page, client: Any, live_server: Any, django_user_model: Any, namespace: str) -> Page:
    """A page with a fresh user's session cookie, as if they had just logged in."""
    user = django_user_model.objects.create_user(username=namespace, email=f"{namespace}@example.com")
    client.force_login(user)
    cookie = django_settings.SESSION_COOKIE_NAME
    page.context.add_cookies(
        [{"name": cookie, "value": client.cookies[cookie].value, "url": live_server.url}]
    )
    return page


@pytest.mark.django_db(transaction=True)
def test_a_user_starts_an_export_watches_the_bar_move_and_downloads_every_row(
    logged_in_page, live_server, broker, worker, settings
):
    settings.EXPORT_CHUNK_ROWS = 100
    demo_history_create(polls=3, end=timezone.now())
    # The worker pauses after each chunk until the test has seen that chunk's progress on the page:
    # the bar is watched moving step by step, however fast the machine is.
    progressed: queue.Queue[int] = queue.Queue()
    go_on = threading.Semaphore(0)

    @receiver(export_progressed)
    def pause(*, rows_written: int, rows_total: int, **kwargs) -> None:
        if rows_written < rows_total:
            progressed.put(rows_written * 100 // rows_total)
            go_on.acquire(timeout=STEP_TIMEOUT_S)

    page = logged_in_page
    try:
        page.goto(f"{live_server.url}/exports/")
        page.get_by_role("button", name="Export snapshot history as CSV").click()
        bar = page.get_by_role("progressbar", name="Export progress").first
        expect(page.get_by_text("Your export has started")).to_be_visible()

        seen = []
        for _ in range(2):
            percent = progressed.get(timeout=STEP_TIMEOUT_S)
            expect(bar).to_have_attribute("value", str(percent))  # htmx polls the row every second
            seen.append(percent)
            go_on.release()
        expect(bar).to_have_attribute("value", "100")
        link = page.get_by_role("link", name="Download CSV")
        expect(link).to_be_visible()
        with page.expect_download() as download_info:
            link.click()
        path = download_info.value.path()
    finally:
        export_progressed.disconnect(pause)
        go_on.release(5)  # never leave the worker waiting

    assert seen == [33, 66]
    assert page.get_by_text("300 of 300 rows").is_visible()
    with open(path, encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 300
    stored = set(RepositorySnapshot.objects.values_list("full_name", "stars", "fetched_at"))
    assert {(r["full_name"], int(r["stars"]), r["fetched_at"]) for r in rows} == {
        (name, stars, at.isoformat()) for name, stars, at in stored
    }
