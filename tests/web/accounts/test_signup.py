import re

import dramatiq
import pytest
from django.contrib.auth import get_user_model
from django.core import mail

from web.accounts.services import confirmation_link

PASSWORD = "a long and unusual passphrase 42"
OTHER_PASSWORD = "another quite unusual passphrase 7"


def _link_in(message) -> str:
    body = message.get_body(preferencelist=("plain",)).get_content()
    match = re.search(r"https?://\S+/accounts/confirm/\S+/", body)
    assert match, body
    return match.group(0)


def _path(link: str) -> str:
    return "/" + link.split("/", 3)[3]


def _pending(address: str, password: str = PASSWORD):
    return get_user_model().objects.create_user(address, address, password, is_active=False)


def _link_for(user) -> str:
    return _path(confirmation_link(user=user))


def _used_link(client, address: str):
    """A new account confirmed through its link, then logged out; returns the account and the link."""
    user = _pending(address)
    link = _link_for(user)
    assert client.post(link, {"password": PASSWORD}).status_code == 302
    client.post("/accounts/logout/")
    return user, link


@pytest.mark.django_db(transaction=True)
def test_signing_up_answers_before_any_mail_is_sent_and_the_mailed_link_confirms_and_logs_in(
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
        message = mailbox.wait_for(address)
    finally:
        worker.stop()
    assert message["Subject"] == "Confirm your offload account"
    page = client.get(_path(_link_in(message)))
    assert "Confirm your account" in page.content.decode()
    assert address in page.content.decode()

    confirmed = client.post(_path(_link_in(message)), {"password": PASSWORD}, follow=True)

    assert confirmed.redirect_chain[-1][0] == "/images/"
    assert "Your account is confirmed, and you are logged in." in confirmed.content.decode()
    assert "Log out" in confirmed.content.decode()
    assert get_user_model().objects.get(email=address).is_active


@pytest.mark.django_db
def test_opening_the_link_without_pressing_the_button_confirms_nothing(client):
    user = _pending("scanned@example.com")

    for _ in range(2):  # a mail scanner, then the person
        page = client.get(_link_for(user))
        assert page.status_code == 200
        assert "Confirm and log in" in page.content.decode()

    user.refresh_from_db()
    assert not user.is_active


@pytest.mark.django_db
def test_a_link_works_once(client):
    _, link = _used_link(client, "once@example.com")

    again = client.post(link, {"password": PASSWORD})

    assert "This account is already confirmed" in again.content.decode()
    assert "_auth_user_id" not in client.session


@pytest.mark.django_db
def test_a_deactivated_account_is_not_reactivated_by_its_old_link(client):
    user, link = _used_link(client, "closed@example.com")
    get_user_model().objects.filter(pk=user.pk).update(is_active=False)  # what an operator does in /admin/

    for response in (client.get(link), client.post(link, {"password": PASSWORD})):
        assert response.status_code == 410
        assert "This confirmation link is no longer valid" in response.content.decode()
    user.refresh_from_db()
    assert not user.is_active


@pytest.mark.django_db
def test_confirming_with_a_wrong_password_is_refused_and_the_account_stays_unconfirmed(client):
    user = _pending("typo@example.com")

    response = client.post(_link_for(user), {"password": "not the one"})

    assert response.status_code == 400
    assert "That is not the password this account was signed up with." in response.content.decode()
    user.refresh_from_db()
    assert not user.is_active


@pytest.mark.django_db
def test_signing_up_again_before_confirming_replaces_the_password_and_the_earlier_link(client):
    user = _pending("twice@example.com")
    earlier = _link_for(user)

    client.post("/accounts/signup/", {"email": "twice@example.com", "password": OTHER_PASSWORD})

    assert client.post(earlier, {"password": PASSWORD}).status_code == 410
    user.refresh_from_db()
    confirmed = client.post(_link_for(user), {"password": OTHER_PASSWORD})
    assert confirmed.status_code == 302
    user.refresh_from_db()
    assert user.is_active


@pytest.mark.django_db
def test_someone_who_signs_up_with_a_strangers_address_cannot_have_the_stranger_activate_it(client):
    # The stranger signs up; then someone else signs up with the same address and their own password.
    # The owner of the mailbox opens the newest link: it asks for the owner's password, not theirs.
    owner = _pending("owner@example.com", PASSWORD)
    client.post("/accounts/signup/", {"email": "owner@example.com", "password": OTHER_PASSWORD})
    owner.refresh_from_db()

    response = client.post(_link_for(owner), {"password": PASSWORD})

    assert response.status_code == 400
    owner.refresh_from_db()
    assert not owner.is_active


@pytest.mark.django_db
def test_an_unconfirmed_account_is_told_to_follow_the_link_before_logging_in(client):
    _pending("new@example.com")

    response = client.post("/accounts/login/", {"username": "new@example.com", "password": PASSWORD})

    assert "not confirmed yet" in response.content.decode()


@pytest.mark.django_db
def test_a_tampered_link_gets_a_page_saying_it_is_not_valid(client):
    user = _pending("t@example.com")
    link = _link_for(user)
    tampered = link[:-4] + ("aaa/" if not link.endswith("aaa/") else "bbb/")

    response = client.post(tampered, {"password": PASSWORD})

    assert response.status_code == 400
    assert "This confirmation link is not valid" in response.content.decode()
    user.refresh_from_db()
    assert not user.is_active


@pytest.mark.django_db
def test_an_expired_link_gets_a_page_offering_a_new_one(client, settings):
    user = _pending("e@example.com")
    link = _link_for(user)
    settings.ACCOUNT_CONFIRMATION_MAX_AGE_S = -1

    response = client.get(link)

    assert response.status_code == 410
    assert "This confirmation link has expired" in response.content.decode()
    assert "Send me a new link" in response.content.decode()
    user.refresh_from_db()
    assert not user.is_active


@pytest.mark.django_db(transaction=True)
def test_asking_for_a_new_link_from_the_expired_page_mails_one_that_works(
    client, worker, mailbox, namespace, settings
):
    address = f"{namespace}@example.com"
    expired = _link_for(_pending(address))
    settings.ACCOUNT_CONFIRMATION_MAX_AGE_S = -1

    response = client.post(expired)

    assert "We sent you a new confirmation link" in response.content.decode()
    fresh = _link_in(mailbox.wait_for(address))
    settings.ACCOUNT_CONFIRMATION_MAX_AGE_S = 3600
    assert client.post(_path(fresh), {"password": PASSWORD}).status_code == 302


def _signup_page_for(client, address: str) -> tuple[int, str]:
    response = client.post("/accounts/signup/", {"email": address, "password": PASSWORD}, follow=True)
    page = response.content.decode().replace(address, "ADDRESS")
    return response.status_code, re.sub(r"[A-Za-z0-9]{64}", "CSRF-TOKEN", page)  # masked anew each time


@pytest.mark.django_db
def test_the_sign_up_answer_is_the_same_whether_or_not_the_address_has_an_account(client):
    get_user_model().objects.create_user("taken@example.com", "taken@example.com", OTHER_PASSWORD)

    assert _signup_page_for(client, "taken@example.com") == _signup_page_for(client, "free@example.com")
    assert get_user_model().objects.get(email="taken@example.com").check_password(OTHER_PASSWORD)


@pytest.mark.django_db(transaction=True)
def test_signing_up_with_the_address_of_an_active_account_mails_its_owner_instead(
    client, worker, mailbox, namespace
):
    address = f"{namespace}@example.com"
    get_user_model().objects.create_user(address, address, OTHER_PASSWORD)

    client.post("/accounts/signup/", {"email": address.upper(), "password": PASSWORD})

    message = mailbox.wait_for(address)
    assert message["Subject"] == "You already have an offload account"
    assert "/accounts/login/" in message.get_body(("plain",)).get_content()
    assert get_user_model().objects.filter(email__iexact=address).count() == 1


@pytest.mark.django_db
def test_the_mail_says_how_long_the_link_works_and_that_it_asks_for_the_password(settings):
    settings.ACCOUNT_CONFIRMATION_MAX_AGE_S = 3 * 24 * 3600
    user = _pending("words@example.com")
    from web.accounts.services import user_send_confirmation_email

    user_send_confirmation_email(user_id=user.pk)

    body = mail.outbox[0].body
    assert "for 72 hours" in body
    assert "enter the password you chose" in body
