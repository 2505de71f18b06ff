import re

import pytest
from playwright.sync_api import Page, expect

from tests.web.images.conftest import jpeg_bytes

PASSWORD = "a long and unusual passphrase 42"


@pytest.mark.django_db(transaction=True)
def test_a_visitor_signs_up_confirms_logs_in_again_uploads_and_sees_the_thumbnails_without_reloading(
    page: Page, live_server, worker, mailbox, namespace, settings, tmp_path
):
    settings.SITE_URL = live_server.url
    settings.MEDIA_ROOT = tmp_path / "media"
    address = f"{namespace}@example.com"

    page.goto(f"{live_server.url}/")
    page.get_by_role("link", name="Sign up").click()
    page.get_by_label("Email").fill(address)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign up").click()
    expect(page.get_by_role("heading", name="Check your email")).to_be_visible()

    mail = mailbox.wait_for(address)
    link = re.search(r"https?://\S+/accounts/confirm/\S+/", mail.get_body(("plain",)).get_content()).group(0)
    page.goto(link)
    expect(page.get_by_role("heading", name="Confirm your account")).to_be_visible()
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Confirm and log in").click()
    expect(page.get_by_role("heading", name="Images")).to_be_visible()
    expect(page.get_by_text("Your account is confirmed, and you are logged in.")).to_be_visible()
    expect(page.get_by_text(address)).to_be_visible()

    page.get_by_role("button", name="Log out").click()
    page.get_by_role("link", name="Log in").click()
    page.get_by_label("Email").fill(address)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Images")).to_be_visible()

    photo = tmp_path / "holiday.jpg"
    photo.write_bytes(jpeg_bytes(2400, 1600, orientation=6))
    page.get_by_label("Image").set_input_files(photo)
    page.get_by_role("button", name="Upload").click()
    expect(page.get_by_role("heading", name="holiday.jpg")).to_be_visible()
    page.evaluate("window.stillTheSamePage = true")

    thumbnail = page.get_by_role("img", name="holiday.jpg, 1024 px")
    expect(thumbnail).to_be_visible(timeout=30_000)
    assert page.evaluate("window.stillTheSamePage === true"), "the page was reloaded"
    # Visible is not loaded: decode() settles once the picture has arrived (and fails if it cannot).
    assert thumbnail.evaluate("async (img) => { await img.decode(); return img.naturalHeight; }") == 1024
    expect(page.get_by_text("Thumbnails ready")).to_be_visible()
