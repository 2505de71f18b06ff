"""Session-wide servers on loopback, and a unique namespace per test so tests never see each other."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import dramatiq
import pytest

from brokers import SQSBroker
from brokers.localsqs import LocalSQSServer

# Any credentials do for a loopback server; real ones must never be used by the tests.
_TEST_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
}


@pytest.fixture(scope="session")
def sqs_endpoint() -> Iterator[str]:
    """An SQS endpoint: SQS_ENDPOINT_URL from the environment when set, else moto on a free port."""
    external = os.environ.get("SQS_ENDPOINT_URL_FOR_TESTS")
    if external:
        yield external
        return
    with LocalSQSServer("127.0.0.1", 0) as server:
        yield server.endpoint_url


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


@pytest.fixture
def broker(sqs_endpoint: str, namespace: str) -> Iterator[SQSBroker]:
    """The project's actors bound to a fresh SQSBroker on the test server, in this test's namespace.

    Uses the middleware list from settings, so retries and time limits behave as in production.
    """
    from django.conf import settings
    from django_dramatiq.utils import load_middleware

    middleware = [load_middleware(path) for path in settings.DRAMATIQ_BROKER["MIDDLEWARE"]]
    test_broker = SQSBroker(
        namespace=namespace, endpoint_url=sqs_endpoint, region_name="us-east-1", middleware=middleware
    )
    previous = dramatiq.get_broker()
    actors = list(previous.actors.values())
    dramatiq.set_broker(test_broker)
    for actor in actors:
        actor.broker = test_broker
        test_broker.declare_actor(actor)
    yield test_broker
    test_broker.close()
    for actor in actors:
        actor.broker = previous
    dramatiq.set_broker(previous)


@pytest.fixture
def worker(broker: SQSBroker) -> Iterator[dramatiq.Worker]:
    """A running dramatiq Worker (4 threads) on the test broker; stopped after the test."""
    running = dramatiq.Worker(broker, worker_threads=4, worker_timeout=100)
    running.start()
    yield running
    running.stop()
