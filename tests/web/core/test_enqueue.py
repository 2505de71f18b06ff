import logging

import pytest
from django.db import transaction

from tasks.echo import echo
from web.core.enqueue import collect_batch, enqueue_on_commit
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
