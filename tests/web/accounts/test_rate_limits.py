"""Rate limits on log-ins, sign-ups and resent links, as a visitor meets them."""

import threading

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test import Client
from limits import parse
from limits.strategies import FixedWindowRateLimiter

from web.accounts.counters import DatabaseStorage
from web.accounts.services import confirmation_link

PASSWORD = "a long and unusual passphrase 42"


def _login(client: Client, address: str, password: str, **extra):
    return client.post("/accounts/login/", {"username": address, "password": password}, **extra)


def _signup(client: Client, address: str, **extra):
    return client.post("/accounts/signup/", {"email": address, "password": PASSWORD}, **extra)


@pytest.mark.django_db
def test_after_too_many_failed_log_ins_for_an_address_even_the_right_password_is_refused(client, settings):
    settings.RATE_LIMIT_LOGIN_FAILURES_PER_ADDRESS = "5/hour"
    get_user_model().objects.create_user("victim@example.com", "victim@example.com", PASSWORD)
    for _ in range(5):
        assert _login(client, "victim@example.com", "guess").status_code == 400

    refused = _login(client, "victim@example.com", PASSWORD)

    assert refused.status_code == 429
    assert int(refused["Retry-After"]) > 0
    assert "Too many failed log-ins for this address. Try again in" in refused.content.decode()
    assert "_auth_user_id" not in client.session


@pytest.mark.django_db
def test_failed_log_ins_for_one_address_do_not_lock_out_another(client, settings):
    settings.RATE_LIMIT_LOGIN_FAILURES_PER_ADDRESS = "3/hour"
    get_user_model().objects.create_user("other@example.com", "other@example.com", PASSWORD)
    for _ in range(4):
        _login(client, "victim@example.com", "guess")

    assert _login(client, "other@example.com", PASSWORD).status_code == 302


@pytest.mark.django_db
def test_successful_log_ins_are_not_counted(client, settings):
    settings.RATE_LIMIT_LOGIN_FAILURES_PER_ADDRESS = "2/hour"
    get_user_model().objects.create_user("often@example.com", "often@example.com", PASSWORD)

    for _ in range(4):
        assert _login(client, "often@example.com", PASSWORD).status_code == 302
        client.post("/accounts/logout/")


@pytest.mark.django_db
def test_one_client_guessing_across_many_addresses_is_refused(client, settings):
    settings.RATE_LIMIT_LOGIN_FAILURES_PER_IP = "6/hour"
    for n in range(6):
        _login(client, f"user{n}@example.com", "Password1")

    refused = _login(client, "user99@example.com", "Password1")

    assert refused.status_code == 429
    assert "Too many failed log-ins from your network." in refused.content.decode()


@pytest.mark.django_db
def test_behind_a_load_balancer_each_visitor_is_counted_by_their_own_address(settings):
    settings.RATE_LIMIT_LOGIN_FAILURES_PER_IP = "3/hour"
    settings.TRUSTED_PROXY_HOPS = 1
    # The balancer connects from 10.0.0.5 and appends the visitor's address; a client's own entry
    # to the left of it is not trusted.
    guesser = Client(REMOTE_ADDR="10.0.0.5", HTTP_X_FORWARDED_FOR="203.0.113.9, 198.51.100.7")
    visitor = Client(REMOTE_ADDR="10.0.0.5", HTTP_X_FORWARDED_FOR="198.51.100.8")
    get_user_model().objects.create_user("fine@example.com", "fine@example.com", PASSWORD)
    for n in range(3):
        _login(guesser, f"user{n}@example.com", "Password1")

    assert _login(guesser, "fine@example.com", PASSWORD).status_code == 429
    assert _login(visitor, "fine@example.com", PASSWORD).status_code == 302


@pytest.mark.django_db
def test_wrong_passwords_on_the_confirmation_page_count_as_failed_log_ins(client, settings):
    settings.RATE_LIMIT_LOGIN_FAILURES_PER_ADDRESS = "3/hour"
    user = get_user_model().objects.create_user(
        "new@example.com", "new@example.com", PASSWORD, is_active=False
    )
    link = "/" + confirmation_link(user=user).split("/", 3)[3]
    for _ in range(3):
        assert client.post(link, {"password": "guess"}).status_code == 400

    refused = client.post(link, {"password": PASSWORD})

    assert refused.status_code == 429
    user.refresh_from_db()
    assert not user.is_active


@pytest.mark.django_db
def test_sign_ups_for_one_address_are_limited_without_saying_whether_it_has_an_account(client, settings):
    settings.RATE_LIMIT_SIGNUP_MAILS_PER_ADDRESS = "3/hour"
    get_user_model().objects.create_user("taken@example.com", "taken@example.com", PASSWORD)
    answers = {}
    for address in ("taken@example.com", "free@example.com"):
        for _ in range(3):
            assert _signup(client, address).status_code == 302
        refused = _signup(client, address)
        told = "We already sent several links to this address" in refused.content.decode()
        answers[address] = (refused.status_code, told)

    assert answers["taken@example.com"] == answers["free@example.com"] == (429, True)


@pytest.mark.django_db
def test_sign_ups_from_one_client_are_limited(client, settings):
    settings.RATE_LIMIT_SIGNUP_MAILS_PER_IP = "4/hour"
    for n in range(4):
        assert _signup(client, f"new{n}@example.com").status_code == 302

    refused = _signup(client, "new99@example.com")

    assert refused.status_code == 429
    assert "Too many sign-ups from your network. Try again in" in refused.content.decode()
    assert not get_user_model().objects.filter(email="new99@example.com").exists()


@pytest.mark.django_db
def test_asking_for_new_links_counts_against_the_same_limit_as_signing_up(client, settings):
    settings.RATE_LIMIT_SIGNUP_MAILS_PER_ADDRESS = "2/hour"
    _signup(client, "slow@example.com")
    user = get_user_model().objects.get(email="slow@example.com")
    settings.ACCOUNT_CONFIRMATION_MAX_AGE_S = -1
    expired = "/" + confirmation_link(user=user).split("/", 3)[3]
    assert "We sent you a new confirmation link" in client.post(expired).content.decode()

    refused = client.post(expired)

    assert refused.status_code == 429
    assert "We already sent several links to this address" in refused.content.decode()


@pytest.mark.django_db(transaction=True)
def test_hits_from_many_threads_at_once_are_all_counted():
    limiter = FixedWindowRateLimiter(DatabaseStorage())
    limit = parse("1000/hour")
    start = threading.Barrier(8)

    def hit_ten_times() -> None:
        try:
            start.wait()
            for _ in range(10):
                limiter.hit(limit, "concurrency")
        finally:
            connection.close()

    threads = [threading.Thread(target=hit_ten_times) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert limiter.get_window_stats(limit, "concurrency").remaining == 1000 - 80


@pytest.mark.django_db
def test_the_admin_log_in_page_is_no_way_around_the_limit(client, settings):
    settings.RATE_LIMIT_LOGIN_FAILURES_PER_ADDRESS = "3/hour"
    get_user_model().objects.create_superuser("root@example.com", "root@example.com", PASSWORD)
    for _ in range(3):
        client.post("/admin/login/", {"username": "root@example.com", "password": "guess"})

    refused = client.post("/admin/login/", {"username": "root@example.com", "password": PASSWORD})

    assert "Too many failed log-ins for this address." in refused.content.decode()
    assert "_auth_user_id" not in client.session


@pytest.mark.django_db
def test_ipv6_clients_are_counted_per_64_bit_prefix(settings):
    settings.RATE_LIMIT_LOGIN_FAILURES_PER_IP = "3/hour"
    get_user_model().objects.create_user("fine@example.com", "fine@example.com", PASSWORD)
    for host in range(1, 4):  # one machine that changes its address within its /64
        _login(Client(REMOTE_ADDR=f"2001:db8:1:2::{host}"), f"user{host}@example.com", "Password1")

    same_prefix = Client(REMOTE_ADDR="2001:db8:1:2:ffff::9")
    other_prefix = Client(REMOTE_ADDR="2001:db8:1:3::1")
    assert _login(same_prefix, "fine@example.com", PASSWORD).status_code == 429
    assert _login(other_prefix, "fine@example.com", PASSWORD).status_code == 302
