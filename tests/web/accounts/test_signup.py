import re

import dramatiq
import pytest
from django.contrib.auth import get_user_model
from django.core import signing

from web.accounts.services import CONFIRMATION_SALT

PASSWORD = "a long and unusual passphrase 42"


def _link_in(mail) -> str:
    body = mail.get_body(preferencelist=("plain",)).get_content()
    match = re.search(r"https?://\S+/accounts/confirm/\S+/", body)
    assert match, body
    return match.group(0)


def _path(link: str) -> str:
    return "/" + link.split("/", 3)[3]


@pytest.mark.django_db(transaction=True)
def test_signing_up_answers_before_any_mail_is_sent_and_the_mailed_link_activates_the_account(
    client, broker, mailbox, namespace
):
    address = f"{namespace}@example.com"

    # No worker runs yet: the answer cannot have waited for the mail.
    response = client.post("/accounts/signup/", {"email": address, "password": PASSWORD}, follow=True)

    assert "Check your email" in response.content.decode()
    assert mailbox.count(address) == 0
    assert not get_user_model().objects.get(email=address).is_active

    worker = dramatiq.Worker(broker, worker_threads=1, worker_timeout=100)
    worker.start()
    try:
        mail = mailbox.wait_for(address)
    finally:
        worker.stop()
    assert mail["Subject"] == "Confirm your offload account"
    confirmed = client.get(_path(_link_in(mail)))

    assert "Your account is confirmed" in confirmed.content.decode()
    logged_in = client.post("/accounts/login/", {"username": address, "password": PASSWORD}, follow=True)
    assert address in logged_in.content.decode()
    assert "Log out" in logged_in.content.decode()


@pytest.mark.django_db
def test_an_unconfirmed_account_is_told_to_follow_the_link_before_logging_in(client):
    get_user_model().objects.create_user("new@example.com", "new@example.com", PASSWORD, is_active=False)

    response = client.post("/accounts/login/", {"username": "new@example.com", "password": PASSWORD})

    assert "not confirmed yet" in response.content.decode()


@pytest.mark.django_db
def test_a_tampered_link_gets_a_page_saying_it_is_not_valid(client):
    user = get_user_model().objects.create_user("t@example.com", "t@example.com", PASSWORD, is_active=False)
    token = signing.dumps({"user": user.pk, "email": user.email}, salt=CONFIRMATION_SALT, compress=True)
    tampered = token[:-3] + ("aaa" if not token.endswith("aaa") else "bbb")

    response = client.get(f"/accounts/confirm/{tampered}/")

    assert response.status_code == 400
    assert "This confirmation link is not valid" in response.content.decode()
    user.refresh_from_db()
    assert not user.is_active


@pytest.mark.django_db
def test_an_expired_link_gets_a_page_offering_a_new_one(client, settings):
    user = get_user_model().objects.create_user("e@example.com", "e@example.com", PASSWORD, is_active=False)
    token = signing.dumps({"user": user.pk, "email": user.email}, salt=CONFIRMATION_SALT, compress=True)
    settings.ACCOUNT_CONFIRMATION_MAX_AGE_S = -1

    response = client.get(f"/accounts/confirm/{token}/")

    assert response.status_code == 410
    assert "This confirmation link has expired" in response.content.decode()
    assert "Send me a new link" in response.content.decode()
    user.refresh_from_db()
    assert not user.is_active


@pytest.mark.django_db
def test_signing_up_twice_with_one_address_is_refused_with_a_clear_error(client):
    get_user_model().objects.create_user("taken@example.com", "taken@example.com", PASSWORD)

    response = client.post("/accounts/signup/", {"email": "Taken@example.com", "password": PASSWORD})

    assert "An account with this email address already exists" in response.content.decode()


@pytest.mark.django_db(transaction=True)
def test_asking_for_a_new_link_from_the_expired_page_mails_one_that_works(
    client, worker, mailbox, namespace, settings
):
    address = f"{namespace}@example.com"
    user = get_user_model().objects.create_user(address, address, PASSWORD, is_active=False)
    expired = signing.dumps({"user": user.pk, "email": user.email}, salt=CONFIRMATION_SALT, compress=True)
    settings.ACCOUNT_CONFIRMATION_MAX_AGE_S = -1

    response = client.post(f"/accounts/confirm/{expired}/")

    assert "We sent you a new confirmation link" in response.content.decode()
    fresh = _link_in(mailbox.wait_for(address))
    settings.ACCOUNT_CONFIRMATION_MAX_AGE_S = 3600
    assert "Your account is confirmed" in client.get(_path(fresh)).content.decode()
