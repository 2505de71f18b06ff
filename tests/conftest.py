"""Session-wide servers on loopback, and a unique namespace per test so tests never see each other."""

from __future__ import annotations

import contextlib
import email
import email.message
import email.policy
import os
import re
import socket
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dramatiq
import pytest

from brokers import SQSBroker
from tests.web.trending.fake_github import FakeGitHub

# Any credentials do for a loopback server; real ones must never be used by the tests.
_TEST_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
}


@pytest.fixture(scope="session")
def sqs_endpoint() -> Iterator[str]:
    """An SQS endpoint: SQS_ENDPOINT_URL from the environment when set, else moto on a free port."""
    external = os.environ.get("SQS_ENDPOINT_URL")
    if external:
        yield external
        return
    # A process of its own, as in `make run`: the server does not compete with the tests for the GIL.
    with running_local_sqs() as endpoint_url:
        yield endpoint_url


@contextlib.contextmanager
def running_local_sqs(port: int = 0) -> Iterator[str]:
    """`python -m brokers.localsqs` in a subprocess on a loopback port; yields its endpoint URL."""
    process = subprocess.Popen(
        [sys.executable, "-m", "brokers.localsqs", "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = process.stdout.readline() if process.stdout else ""
        match = re.search(r"http://127\.0\.0\.1:\d+", line)
        if not match:
            raise RuntimeError(f"The local SQS server did not start: {line!r}")
        yield match.group(0)
    finally:
        process.terminate()
        process.wait(timeout=10)
        if process.stdout:
            process.stdout.close()


@pytest.fixture(scope="session", autouse=True)
def _aws_test_credentials() -> Iterator[None]:
    saved = {key: os.environ.get(key) for key in [*_TEST_CREDENTIALS, "AWS_PROFILE", "AWS_DEFAULT_REGION"]}
    os.environ.update(_TEST_CREDENTIALS)
    os.environ.pop("AWS_PROFILE", None)
    os.environ["AWS_DEFAULT_REGION"] = "us-east-1"
    yield
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture
def namespace() -> str:
    """A queue-name prefix no other test uses."""
    return f"t{uuid.uuid4().hex[:12]}"


@contextlib.contextmanager
def project_actors_on(endpoint_url: str, namespace: str, **options: Any) -> Iterator[SQSBroker]:
    """The project's actors bound to a fresh SQSBroker at endpoint_url, in this namespace.

    Uses the middleware list from settings, so retries and time limits behave as in production;
    `options` go to SQSBroker (e.g. payload_bucket).
    """
    from django.conf import settings
    from django_dramatiq.utils import load_middleware

    middleware = [load_middleware(path) for path in settings.DRAMATIQ_BROKER["MIDDLEWARE"]]
    test_broker = SQSBroker(
        namespace=namespace,
        endpoint_url=endpoint_url,
        region_name="us-east-1",
        middleware=middleware,
        **options,
    )
    previous = dramatiq.get_broker()
    actors = list(previous.actors.values())
    dramatiq.set_broker(test_broker)
    for actor in actors:
        actor.broker = test_broker
        test_broker.declare_actor(actor)
    try:
        yield test_broker
    finally:
        test_broker.close()
        for actor in actors:
            actor.broker = previous
        dramatiq.set_broker(previous)


@pytest.fixture
def broker(sqs_endpoint: str, namespace: str) -> Iterator[SQSBroker]:
    """The project's actors bound to a fresh SQSBroker on the test server, in this test's namespace."""
    with project_actors_on(sqs_endpoint, namespace) as test_broker:
        yield test_broker


@pytest.fixture
def worker(broker: SQSBroker) -> Iterator[dramatiq.Worker]:
    """A running dramatiq Worker (4 threads) on the test broker; stopped after the test."""
    running = dramatiq.Worker(broker, worker_threads=4, worker_timeout=100)
    running.start()
    yield running
    running.stop()


def pytest_report_header(config: pytest.Config) -> str:
    """Which database this run is on: `make test` runs the suite on SQLite and then on PostgreSQL."""
    from django.conf import settings

    database = settings.DATABASES["default"]
    if database["ENGINE"] == "django.db.backends.sqlite3":
        return "database: SQLite, a file of this run's own"
    where = ":".join(str(part) for part in (database.get("HOST"), database.get("PORT")) if part)
    return f"database: {database['ENGINE']} on {where or 'the default socket'}"


@pytest.fixture(scope="session")
def django_db_modify_db_settings(
    django_db_modify_db_settings_parallel_suffix: None, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """On SQLite, the test database is a file of this run's own, not shared-cache memory.

    In shared-cache memory a worker thread writing while a request reads fails at once with
    "database table is locked"; a file (in WAL mode, see settings) waits on the busy timeout instead.
    """
    from django.conf import settings

    database = settings.DATABASES["default"]
    if database["ENGINE"] == "django.db.backends.sqlite3":
        database.setdefault("TEST", {})["NAME"] = str(tmp_path_factory.mktemp("db") / "test.sqlite3")


class Mailbox:
    """The mails a local SMTP server received; wait_for() blocks until one arrives, without polling."""

    def __init__(self) -> None:
        self._messages: list[email.message.EmailMessage] = []
        self._arrived = threading.Condition()

    async def handle_DATA(self, server: object, session: object, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        with self._arrived:
            self._messages.append(message)
            self._arrived.notify_all()
        return "250 OK"

    def wait_for(self, to: str, timeout: float = 10.0) -> email.message.EmailMessage:
        """The first mail to `to`; fails the test if none arrives within timeout seconds."""
        with self._arrived:
            found = self._arrived.wait_for(lambda: self._to(to), timeout=timeout)
        assert found, f"No mail to {to} arrived within {timeout} s."
        return found[0]

    def count(self, to: str) -> int:
        with self._arrived:
            return len(self._to(to))

    def _to(self, to: str) -> list[email.message.EmailMessage]:
        return [m for m in self._messages if to in str(m.get("To", ""))]


@pytest.fixture(scope="session")
def smtp_server() -> Iterator[tuple[str, int, Mailbox]]:
    """A real SMTP server (aiosmtpd) on a free loopback port for the whole session."""
    from aiosmtpd.controller import Controller

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    mailbox = Mailbox()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    yield "127.0.0.1", port, mailbox
    controller.stop()


@pytest.fixture
def mailbox(smtp_server: tuple[str, int, Mailbox], settings: Any) -> Mailbox:
    """Django sends mail over SMTP to the session's local server; tests read what it received.

    Django's test setup swaps every mailer for the in-memory one, so this puts SMTP back.
    """
    host, port, received = smtp_server
    settings.MAILERS = {
        "default": {
            "BACKEND": "django.core.mail.backends.smtp.EmailBackend",
            "OPTIONS": {"host": host, "port": port, "use_tls": False, "timeout": 5},
        }
    }
    return received


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings: Any) -> None:
    """Argon2id costs tens of milliseconds and 24 MiB per password by design; most tests need no such
    cost. Tests about hashing ask for `production_password_hashers` instead."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def production_password_hashers(settings: Any) -> list[str]:
    """The hashers production uses (Argon2id first), in place of the fast one."""
    import web.settings

    settings.PASSWORD_HASHERS = web.settings.PASSWORD_HASHERS
    return settings.PASSWORD_HASHERS


@pytest.fixture(autouse=True)
def _requests_wait_for_their_messages(settings: Any) -> None:
    """A request waits until its messages reach SQS, so a test may join the queue right after it.

    In production a request waits at most OUTBOX_SEND_WAIT_MS (the outbox keeps what is late).
    """
    settings.OUTBOX_SEND_WAIT_MS = 30_000


@pytest.fixture
def github(settings: Any) -> Iterator[FakeGitHub]:
    """GitHub's API played by a real HTTP server on a free loopback port; the poll asks it, no token."""
    with FakeGitHub() as fake:
        settings.GITHUB_API_URL = fake.url
        settings.GITHUB_TOKEN = None
        settings.GITHUB_TIMEOUT_MS = 5_000
        yield fake


@pytest.fixture
def export_dir(settings: Any, tmp_path: Path) -> Path:
    """Export files go to this test's own directory, never the project's."""
    location = tmp_path / "exports"
    settings.STORAGES = {
        **settings.STORAGES,
        "exports": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": location},
        },
    }
    return location
