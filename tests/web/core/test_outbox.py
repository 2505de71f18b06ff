import logging
import threading
from collections.abc import Iterator
from typing import Any

import dramatiq
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection, connections, transaction
from django.utils import timezone

from brokers import SQSBroker
from brokers.localsqs import LocalSQSServer
from tasks.echo import echo
from tests.conftest import project_actors_on
from tests.waiting import wait_until
from tests.web.images.conftest import jpeg_bytes
from web.core.enqueue import wait_for_background_sends
from web.core.models import OutboxMessage
from web.core.outbox import outbox_relay, resume_direct_sends
from web.images.models import Image


class _Finished(dramatiq.Middleware):
    """Sets an event when a message of the named actor has been processed by the worker."""

    def __init__(self, actor_name: str) -> None:
        self.actor_name = actor_name
        self.event = threading.Event()

    def after_process_message(
        self, broker: Any, message: Any, *, result: Any = None, exception: Any = None
    ) -> None:
        if message.actor_name == self.actor_name and exception is None:
            self.event.set()


def left_in_outbox(*messages: dramatiq.Message) -> list[OutboxMessage]:
    """Rows due now, as a web process leaves them when it dies between its commit and its send."""
    return OutboxMessage.objects.bulk_create(
        OutboxMessage(
            queue_name=m.queue_name,
            actor_name=m.actor_name,
            message_id=m.message_id,
            body=m.encode().decode(),
            available_at=timezone.now(),
        )
        for m in messages
    )


@pytest.fixture
def own_sqs() -> Iterator[dict[str, Any]]:
    """An SQS server of this test's own, so the test can stop it and start it again on the same port."""
    state = {"server": LocalSQSServer("127.0.0.1", 0).start()}
    yield state
    state["server"].stop()


@pytest.fixture
def own_broker(own_sqs: dict[str, Any], namespace: str) -> Iterator[SQSBroker]:
    with project_actors_on(own_sqs["server"].endpoint_url, namespace) as broker:
        yield broker
    resume_direct_sends()


@pytest.mark.django_db(transaction=True)
def test_an_upload_made_while_sqs_is_down_gets_its_thumbnails_once_sqs_is_back(
    own_sqs, own_broker, owner_client, settings, tmp_path
):
    settings.MEDIA_ROOT = tmp_path
    settings.OUTBOX_RELAY_INTERVAL_MS = 100
    settings.OUTBOX_SEND_WAIT_MS = 500  # as in production
    finished = _Finished("make_thumbnails")
    own_broker.add_middleware(finished)
    own_broker.queue_url("default")
    worker = dramatiq.Worker(own_broker, worker_threads=2, worker_timeout=100)
    worker.start()
    try:
        port = own_sqs["server"].port
        own_sqs["server"].stop()

        upload = SimpleUploadedFile("photo.jpg", jpeg_bytes(1600, 1200), content_type="image/jpeg")
        response = owner_client.post("/images/", {"image": upload})

        assert response.status_code == 302, "the user sees a normal answer"
        assert "Making thumbnails" in owner_client.get(response["Location"]).content.decode()
        waiting = OutboxMessage.objects.get()
        assert waiting.actor_name == "make_thumbnails"

        own_sqs["server"] = LocalSQSServer("127.0.0.1", port).start()

        assert finished.event.wait(timeout=60), "the thumbnails were never made"
        status = owner_client.get(response["Location"] + "status/").content.decode()
        assert "Thumbnails ready" in status
        assert Image.objects.get().thumbnails.count() == 3
        # The sender deletes the row after its send: the run may end first.
        wait_until(lambda: not OutboxMessage.objects.exists(), what="the outbox row deleted after its send")
    finally:
        assert wait_for_background_sends(), "a send that outlived its request is still running"
        worker.stop()


@pytest.mark.django_db(transaction=True)
def test_a_message_left_in_the_outbox_by_a_process_that_died_after_commit_is_sent_by_the_relay(
    broker, settings, caplog
):
    settings.OUTBOX_RELAY_INTERVAL_MS = 100
    finished = _Finished("echo")
    broker.add_middleware(finished)
    left_in_outbox(echo.message("left behind"))
    caplog.set_level(logging.INFO)
    worker = dramatiq.Worker(broker, worker_threads=1, worker_timeout=100)
    worker.start()
    try:
        assert finished.event.wait(timeout=30), "the relay never sent the message"
    finally:
        worker.stop()

    assert "Echo: 'left behind'." in caplog.messages
    assert not OutboxMessage.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_relays_running_at_once_send_each_outbox_row_once(broker):
    left_in_outbox(*(echo.message(f"row {i}") for i in range(25)))
    start = threading.Barrier(3)
    sent: list[int] = []

    def relay() -> None:
        start.wait()
        sent.append(outbox_relay(broker=broker))
        connections.close_all()

    threads = [threading.Thread(target=relay) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert sum(sent) == 25
    assert broker.queue_counts("default")["visible"] == 25
    assert not OutboxMessage.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_attempts_that_cannot_reach_sqs_do_not_count_so_an_outage_sets_nothing_aside(
    own_sqs, own_broker, settings
):
    settings.OUTBOX_MAX_ATTEMPTS = 1
    own_broker.queue_url("default")
    left_in_outbox(echo.message("through an outage"))
    port = own_sqs["server"].port
    own_sqs["server"].stop()

    assert outbox_relay(broker=own_broker) == 0

    row = OutboxMessage.objects.get()
    assert row.set_aside_at is None
    assert row.attempts == 0
    assert "ConnectionClosed" in row.last_error
    own_sqs["server"] = LocalSQSServer("127.0.0.1", port).start()
    OutboxMessage.objects.update(available_at=timezone.now())  # its pause is over
    assert outbox_relay(broker=own_broker) == 1
    assert not OutboxMessage.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_a_relay_passes_over_rows_another_relay_is_claiming_instead_of_waiting_for_them(broker):
    if not connection.features.has_select_for_update_skip_locked:
        pytest.skip("Only a database with SKIP LOCKED (Postgres) lets two claims run side by side.")
    rows = left_in_outbox(*(echo.message(f"row {i}") for i in range(20)))
    held_ids = [row.pk for row in rows[:10]]
    held, release = threading.Event(), threading.Event()
    sent: list[int] = []

    def other_relay_claiming() -> None:
        try:
            with transaction.atomic():
                list(OutboxMessage.objects.select_for_update().filter(pk__in=held_ids))
                held.set()
                release.wait(timeout=30)
        finally:
            connections.close_all()

    def relay() -> None:
        try:
            sent.append(outbox_relay(broker=broker))
        finally:
            connections.close_all()

    holder = threading.Thread(target=other_relay_claiming)
    holder.start()
    try:
        assert held.wait(timeout=10)
        relaying = threading.Thread(target=relay)
        relaying.start()
        relaying.join(timeout=20)
        assert not relaying.is_alive(), "the relay waited for rows another relay holds"
    finally:
        release.set()
        holder.join(timeout=30)

    assert sent == [10]
    assert sorted(OutboxMessage.objects.values_list("pk", flat=True)) == held_ids
    assert broker.queue_counts("default")["visible"] == 10
