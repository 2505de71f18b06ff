import logging
import threading
from typing import Any

import dramatiq
import pytest
from django.db import transaction
from django.utils import timezone

from tasks.echo import echo
from tests.waiting import wait_until
from web.core.enqueue import collect_batch, enqueue_on_commit, wait_for_background_sends
from web.core.models import OutboxMessage


@pytest.mark.django_db(transaction=True)
def test_messages_enqueued_in_one_request_go_out_in_one_batch_after_commit(broker, worker, caplog):
    caplog.set_level(logging.INFO, logger="tasks.echo")

    with collect_batch():
        with transaction.atomic():
            for word in ("one", "two", "three"):
                enqueue_on_commit(echo, word)
            assert _sends(broker) == (0, 0), "nothing may be sent before the commit"
        assert _sends(broker) == (0, 0), "nothing may be sent before the request ends"
    broker.join(echo.queue_name, timeout=10_000)

    assert _sends(broker) == (0, 1)
    assert {"Echo: 'one'.", "Echo: 'two'.", "Echo: 'three'."} <= set(caplog.messages)
    assert not OutboxMessage.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_a_rolled_back_transaction_sends_nothing_and_leaves_no_outbox_row(broker):
    def failing_view() -> None:
        with transaction.atomic():
            enqueue_on_commit(echo, "never")
            raise RuntimeError("the view failed")

    with pytest.raises(RuntimeError):
        failing_view()

    assert _sends(broker) == (0, 0)
    assert not OutboxMessage.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_outside_a_request_a_message_is_sent_when_its_transaction_commits(broker, worker, caplog):
    caplog.set_level(logging.INFO, logger="tasks.echo")

    with transaction.atomic():
        enqueue_on_commit(echo, "from a command")
    broker.join(echo.queue_name, timeout=10_000)

    assert "Echo: 'from a command'." in caplog.messages
    assert not OutboxMessage.objects.exists()


def _sends(broker) -> tuple[int, int]:
    """(SendMessage, SendMessageBatch) requests the broker made so far."""
    return broker.stats.get("SendMessage", 0), broker.stats.get("SendMessageBatch", 0)


class _Gate(dramatiq.Middleware):
    """Holds every send to SQS until the test opens it: SQS as slow as the test needs."""

    def __init__(self) -> None:
        self.open = threading.Event()

    def before_enqueue(self, broker: Any, message: Any, delay: Any) -> None:
        assert self.open.wait(timeout=30), "the test never opened the gate"


def _sender_threads() -> int:
    return sum(1 for thread in threading.enumerate() if thread.name == "outbox-send")


@pytest.mark.django_db(transaction=True)
def test_sends_that_outlive_their_requests_are_bounded_and_their_threads_go_when_done(broker, settings):
    settings.OUTBOX_MAX_BACKGROUND_SENDS = 2
    gate = _Gate()
    broker.add_middleware(gate)
    broker.queue_url("default")

    def request(text: str) -> None:
        with collect_batch(wait_ms=0), transaction.atomic():  # a request that waits for nobody
            enqueue_on_commit(echo, text)

    try:
        for text in ("one", "two", "three"):
            request(text)
        assert _sender_threads() == 2
        handed_over = OutboxMessage.objects.get(available_at__lte=timezone.now())
        assert "three" in handed_over.body, "the third request left its message to the relay at once"
        assert "sends to SQS were still running" in handed_over.last_error
    finally:
        gate.open.set()
    wait_until(lambda: _sender_threads() == 0, what="the background sends to end")

    gate.open.clear()
    try:
        request("four")  # the finished threads left room for a new one
        assert _sender_threads() == 1
    finally:
        gate.open.set()
    assert wait_for_background_sends()
    (left,) = OutboxMessage.objects.all()
    assert left == handed_over, "only the message handed to the relay is still waiting"
    assert broker.queue_counts("default")["visible"] == 3
