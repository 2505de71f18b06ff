from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.contrib.auth import get_user_model
from django.utils import timezone
from playwright.sync_api import Page, expect

from tests.web.ops import conftest as ops_fixtures
from web.ops.models import QueueDepthSample

# The dead letters of tests/web/ops, made the same way here.
dead_confirmation = ops_fixtures.dead_confirmation
mail_server_down = ops_fixtures.mail_server_down


@pytest.fixture
def staff_page(page: Page, client: Any, live_server: Any, admin_user: Any) -> Page:
    """A page with a staff member's session cookie, as if they had just logged in."""
    client.force_login(admin_user)
    cookie = django_settings.SESSION_COOKIE_NAME
    page.context.add_cookies(
        [{"name": cookie, "value": client.cookies[cookie].value, "url": live_server.url}]
    )
    return page


@pytest.mark.django_db(transaction=True)
def test_an_operator_reads_the_dashboard_retries_one_dead_letter_from_its_page_then_all_in_the_background(
    staff_page, live_server, dead_confirmation, mail_server_down, mailbox
):
    first, second = dead_confirmation("first"), dead_confirmation("second")
    now = timezone.now()
    for minutes_ago in range(30, 0, -1):
        QueueDepthSample.objects.create(
            queue_name="default",
            sampled_at=now - timedelta(minutes=minutes_ago),
            visible=minutes_ago,
            in_flight=0,
            delayed=0,
            dead_letters=2,
        )
    page = staff_page

    page.goto(f"{live_server.url}/ops/")
    actor = page.get_by_role("row", name=re.compile(r"^send_confirmation_email"))
    expect(actor.get_by_role("cell").nth(1)).to_have_text("2")  # failed for good in the last hour
    expect(page.get_by_role("img", name="Runs finished per 15 minutes, last 24 hours (UTC)")).to_be_visible()
    expect(page.get_by_role("img", name="Queue default: messages, last 24 hours (UTC)")).to_be_visible()
    expect(page.get_by_text(re.compile(r"Most waiting: 30 at \d\d:\d\d UTC"))).to_be_visible()

    page.get_by_role("link", name="Show dead letters").click()
    expect(page.get_by_role("heading", name="Dead letters of default")).to_be_visible()
    expect(page.get_by_text("About 2 dead letters in the queue.")).to_be_visible()
    expect(page.get_by_role("row", name=re.compile("ConnectionRefusedError"))).to_have_count(2)

    page.get_by_role("link", name="send_confirmation_email").first.click()
    expect(page.get_by_role("heading", name="Dead letter: send_confirmation_email")).to_be_visible()
    expect(page.get_by_role("heading", name="Traceback")).to_be_visible()
    user_id = re.search(r'"user_id": (\d+)', page.locator("pre.body").inner_text()).group(1)
    retried = get_user_model().objects.get(pk=user_id).email
    mail_server_down()  # ...is over: the mail server is back

    page.get_by_role("button", name="Retry").click()
    expect(page.get_by_text("Sent the send_confirmation_email message back to default")).to_be_visible()
    assert mailbox.wait_for(retried)["Subject"] == "Confirm your offload account"
    expect(page.get_by_role("row", name=re.compile("ConnectionRefusedError"))).to_have_count(1)

    page.get_by_role("button", name="Retry all").click()
    expect(page.get_by_text("A worker is sending every dead letter of default back")).to_be_visible()
    [other] = {first, second} - {retried}
    assert mailbox.wait_for(other)["Subject"] == "Confirm your offload account"
    # The queue table refreshes itself every 5 seconds, the redrive's outcome with it.
    redrive = page.locator("table.redrives tbody tr").first
    expect(redrive.get_by_role("cell").nth(3)).to_have_text("Done")
    expect(redrive.get_by_role("cell").nth(4)).to_have_text("1")
