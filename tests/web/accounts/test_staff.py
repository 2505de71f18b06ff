"""A newcomer becomes staff as the README says, and can log in with that email and open /ops/."""

import pytest
from django.core.management import call_command
from django.test import Client

PASSWORD = "a long and unusual passphrase 42"


@pytest.mark.django_db
def test_the_readme_command_makes_a_staff_account_that_logs_in_by_email_and_sees_ops(monkeypatch):
    # README: manage.py createsuperuser --username you@example.com --email you@example.com
    monkeypatch.setenv("DJANGO_SUPERUSER_PASSWORD", PASSWORD)
    call_command(
        "createsuperuser",
        interactive=False,
        username="boss@example.com",
        email="boss@example.com",
        verbosity=0,
    )
    client = Client()

    logged_in = client.post("/accounts/login/", {"username": "Boss@Example.com", "password": PASSWORD})

    assert logged_in.status_code == 302
    ops = client.get("/ops/")
    assert ops.status_code == 200
    assert 'href="/ops/"' in ops.content.decode()
