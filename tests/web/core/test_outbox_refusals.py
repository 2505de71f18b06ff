"""Messages SQS refuses one by one: each fails alone, the others go out once, and the operator decides."""

from __future__ import annotations

import json
from typing import Any

import dramatiq
import pytest
from django.db import transaction
from django.tasks import TaskResultStatus
from django.utils import timezone

from tasks.echo import echo
from tests.web.core import example_tasks
from web.core.enqueue import collect_batch, enqueue_on_commit
from web.core.models import OutboxMessage
from web.core.outbox import outbox_relay
from web.core.task_results import MessageDiscarded

pytestmark = pytest.mark.django_db(transaction=True)

#: Above the most SQS allows in one message (1 MiB, also what the local server allows).
TOO_LARGE = "x" * 1_100_000


def waiting_texts(broker: Any, queue_name: str = "default") -> list[str]:
    """The first argument of every message waiting in a queue; they stay there, visible again."""
    url = broker.queue_url(queue_name)
    received: list[dict[str, Any]] = []
    while batch := broker.client.receive_message(
        QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=30
    ).get("Messages", []):
        received += batch
    for start in range(0, len(received), 10):
        entries = [
            {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"], "VisibilityTimeout": 0}
            for i, m in enumerate(received[start : start + 10])
        ]
        broker.client.change_message_visibility_batch(QueueUrl=url, Entries=entries)
    return sorted(json.loads(m["Body"])["args"][0] for m in received)


def commit_in_one_request(*calls: tuple[Any, tuple[Any, ...]]) -> None:
    """What a view does: enqueue in its transaction; the request's batch goes out when it ends."""
    with collect_batch(), transaction.atomic():
        for actor, args in calls:
            enqueue_on_commit(actor, *args)


def test_a_message_too_large_for_sqs_fails_alone_and_the_messages_around_it_are_sent_once(broker):
    commit_in_one_request((echo, ("before",)), (echo, (TOO_LARGE,)), (echo, ("after",)))

    assert waiting_texts(broker) == ["after", "before"]
    left = OutboxMessage.objects.get()
    assert left.body.count("x") >= len(TOO_LARGE)
    assert left.last_error.startswith("MessageTooLarge: ")
    assert left.available_at <= timezone.now(), "the relay may take it at once"

    # The refusal did not stop direct sends: the next commit still goes straight to SQS.
    commit_in_one_request((echo, ("next",)))
    assert OutboxMessage.objects.count() == 1
    assert "next" in waiting_texts(broker)


def test_after_the_last_refused_attempt_the_relay_sets_a_message_aside_and_sends_nothing_twice(
    broker, settings, admin_client
):
    settings.OUTBOX_MAX_ATTEMPTS = 2
    commit_in_one_request((echo, ("kept",)), (echo, (TOO_LARGE,)))
    row = OutboxMessage.objects.get()

    assert outbox_relay(broker=broker) == 0
    row.refresh_from_db()
    assert (row.attempts, row.set_aside_at) == (1, None)
    OutboxMessage.objects.filter(pk=row.pk).update(available_at=timezone.now())  # its pause is over
    assert outbox_relay(broker=broker) == 0
    row.refresh_from_db()

    assert row.attempts == 2
    assert row.set_aside_at is not None
    assert outbox_relay(broker=broker) == 0, "a set-aside row is not tried again"
    assert waiting_texts(broker) == ["kept"]
    page = admin_client.get("/ops/").content.decode()
    assert "Messages committed but not yet in SQS (outbox): <strong>0</strong>" in page
    assert "Set aside" in page
    assert "MessageTooLarge" in page
    assert "Send again" in page


def test_a_message_whose_queue_is_gone_fails_alone_and_is_sent_again_once_an_operator_restores_it(
    broker, settings, admin_client
):
    settings.OUTBOX_MAX_ATTEMPTS = 1
    gone = dramatiq.actor(lambda text: None, actor_name="gone_job", queue_name="gone", broker=broker)
    url = broker.queue_url("gone")
    broker.client.delete_queue(QueueUrl=url)

    commit_in_one_request((echo, ("one",)), (gone, ("lost?",)), (echo, ("two",)))
    outbox_relay(broker=broker)

    assert waiting_texts(broker) == ["one", "two"]
    row = OutboxMessage.objects.get()
    assert row.actor_name == "gone_job"
    assert row.set_aside_at is not None
    assert "does not exist" in row.last_error
    assert "does not exist" in admin_client.get("/ops/").content.decode()

    broker.client.create_queue(QueueName=url.rsplit("/", 1)[1])
    response = admin_client.post(f"/ops/outbox/{row.pk}/", {"action": "retry"}, follow=True)
    assert "back in line" in response.content.decode()
    assert outbox_relay(broker=broker) == 1

    assert waiting_texts(broker, "gone") == ["lost?"]
    assert waiting_texts(broker) == ["one", "two"]
    assert not OutboxMessage.objects.exists()


def test_an_operator_can_discard_a_set_aside_message(broker, settings, admin_client):
    settings.OUTBOX_MAX_ATTEMPTS = 1
    commit_in_one_request((echo, (TOO_LARGE,)))
    outbox_relay(broker=broker)
    row = OutboxMessage.objects.get()

    response = admin_client.post(f"/ops/outbox/{row.pk}/", {"action": "discard"}, follow=True)

    assert "Discarded the set-aside message" in response.content.decode()
    assert not OutboxMessage.objects.exists()
    assert admin_client.post(f"/ops/outbox/{row.pk}/", {"action": "discard"}).status_code == 404


def test_a_django_task_whose_message_is_discarded_shows_failed_and_why(broker, settings, admin_client):
    settings.OUTBOX_MAX_ATTEMPTS = 1
    settings.TASKS = {
        "default": {
            "BACKEND": "web.core.django_tasks.SQSTaskBackend",
            "OPTIONS": {"queue_map": {"default": "gone"}},
        }
    }
    broker.declare_queue("gone")
    broker.client.delete_queue(QueueUrl=broker.queue_url("gone"))
    result = example_tasks.add.enqueue(1, 2)
    outbox_relay(broker=broker)
    row = OutboxMessage.objects.get()
    assert row.set_aside_at is not None
    assert example_tasks.add.get_result(result.id).status == TaskResultStatus.READY

    admin_client.post(f"/ops/outbox/{row.pk}/", {"action": "discard"}, follow=True)

    failed = example_tasks.add.get_result(result.id)
    assert failed.status == TaskResultStatus.FAILED
    assert failed.finished_at is not None
    [error] = failed.errors
    assert error.exception_class is MessageDiscarded
    assert "set aside after 1 refusal(s) (" in error.traceback
    assert "does not exist" in error.traceback
    assert error.traceback.rstrip().endswith("discarded by an operator; it never ran.")
