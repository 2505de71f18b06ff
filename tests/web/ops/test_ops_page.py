import socket

import pytest
from django.contrib.auth import get_user_model

from tasks.send_confirmation_email import send_confirmation_email


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.django_db(transaction=True)
def test_a_dead_letter_shows_on_the_ops_page_and_retrying_it_runs_it_again(
    admin_client, broker, worker, mailbox, settings, namespace
):
    address = f"{namespace}@example.com"
    user = get_user_model().objects.create_user(address, address, "irrelevant password 1", is_active=False)
    working_mail = settings.MAILERS
    settings.MAILERS = {
        "default": {
            "BACKEND": "django.core.mail.backends.smtp.EmailBackend",
            "OPTIONS": {"host": "127.0.0.1", "port": _closed_port(), "use_tls": False, "timeout": 2},
        }
    }
    message = send_confirmation_email.send_with_options(kwargs={"user_id": user.pk}, max_retries=0)
    broker.join(message.queue_name, timeout=10_000)

    page = admin_client.get("/ops/").content.decode()
    assert "Dead letters" in page
    assert "Retry all" in page
    assert "ConnectionRefusedError" in page
    assert broker.queue_counts("default")["dead_letters"] == 1

    settings.MAILERS = working_mail  # the mail server is back
    response = admin_client.post("/ops/queues/default/redrive/", {"how_many": "all"}, follow=True)

    assert "Sent 1 dead letter(s) of default back to be tried again." in response.content.decode()
    assert mailbox.wait_for(address)["Subject"] == "Confirm your offload account"


@pytest.mark.django_db
def test_the_ops_page_is_for_staff_only(client):
    user = get_user_model().objects.create_user("plain@example.com", "plain@example.com", "x")
    client.force_login(user)

    response = client.get("/ops/")

    assert response.status_code == 302
    assert "login" in response["Location"]
