"""Dead letters made the way production makes them: a worker runs an actor whose mail server is down."""

from __future__ import annotations

import socket
from typing import Any

import pytest
from django.contrib.auth import get_user_model

from tasks.send_confirmation_email import send_confirmation_email


def closed_port() -> int:
    """A loopback port nobody listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def mail_server_down(settings: Any, mailbox: Any) -> Any:
    """Mail goes to a port nobody listens on until the test calls the returned function."""
    working = settings.MAILERS
    settings.MAILERS = {
        "default": {
            "BACKEND": "django.core.mail.backends.smtp.EmailBackend",
            "OPTIONS": {"host": "127.0.0.1", "port": closed_port(), "use_tls": False, "timeout": 2},
        }
    }

    def back_up() -> None:
        settings.MAILERS = working

    return back_up


@pytest.fixture
def dead_confirmation(broker: Any, worker: Any, mail_server_down: Any, namespace: str) -> Any:
    """Makes a confirmation mail fail for good (a dead letter on `default`); returns the address."""

    def make(name: str = "") -> str:
        address = f"{namespace}{name}@example.com"
        user = get_user_model().objects.create_user(
            address, address, "irrelevant password 1", is_active=False
        )
        message = send_confirmation_email.send_with_options(kwargs={"user_id": user.pk}, max_retries=0)
        broker.join(message.queue_name, timeout=10_000)
        return address

    return make
