"""Queue names, creation, dead-letter queues."""

from __future__ import annotations

import json

import dramatiq
import pytest

from brokers import InvalidQueueName, QueueDoesNotExist
from brokers.names import sqs_queue_name
from brokers.sqs import DEFAULT_MAX_RECEIVE_COUNT


@pytest.mark.parametrize(
    ("queue_name", "namespace", "dead_letter", "expected"),
    [
        ("default", None, False, "default"),
        ("default", "shop", False, "shop-default"),
        ("default.DQ", "shop", False, "shop-default-DQ"),
        ("default.XQ", "shop", False, "shop-default-XQ"),
        ("emails.high", "shop", True, "shop-emails-high-dlq"),
        ("orders.fifo", "shop", False, "shop-orders.fifo"),
        ("orders.fifo", "shop", True, "shop-orders-dlq.fifo"),
    ],
)
def test_dramatiq_queue_names_map_to_legal_sqs_names(queue_name, namespace, dead_letter, expected):
    assert sqs_queue_name(queue_name, namespace=namespace, dead_letter=dead_letter) == expected


def test_a_queue_name_too_long_for_sqs_is_a_clear_error():
    with pytest.raises(InvalidQueueName, match="at most 80"):
        sqs_queue_name("q" * 70, namespace="namespace", dead_letter=True)


def test_an_illegal_namespace_is_refused_when_the_broker_is_made(make_broker):
    with pytest.raises(InvalidQueueName, match="letters, digits"):
        make_broker(namespace="my app")


def test_two_queue_names_that_map_to_the_same_sqs_queue_are_refused(sqs_broker):
    sqs_broker.declare_queue("emails.high")

    with pytest.raises(InvalidQueueName, match="both map to SQS queue"):
        sqs_broker.declare_queue("emails-high")


def test_declaring_a_queue_sends_no_request_until_it_is_used(sqs_broker):
    sqs_broker.declare_queue("default")

    assert sqs_broker.stats == {}


def test_queues_are_created_with_a_dead_letter_queue_once_and_then_cached(sqs_broker, sqs, namespace):
    @dramatiq.actor(broker=sqs_broker)
    def task():
        pass

    for _ in range(3):
        task.send()

    names = sorted(url.rsplit("/", 1)[-1] for url in sqs.list_queues(QueueNamePrefix=namespace)["QueueUrls"])
    assert names == [f"{namespace}-default", f"{namespace}-default-dlq"]
    assert sqs_broker.dead_letter_queue_url("default").endswith(f"/{namespace}-default-dlq")
    stats = sqs_broker.stats
    assert stats["GetQueueUrl"] == 2
    assert stats["CreateQueue"] == 2
    assert stats["SendMessage"] == 3


def test_an_existing_queue_is_looked_up_not_created(make_broker, sqs, namespace):
    sqs.create_queue(QueueName=f"{namespace}-default")
    sqs.create_queue(QueueName=f"{namespace}-default-dlq")
    broker = make_broker(create_queues=False)
    broker.declare_queue("default")

    assert broker.queue_url("default").endswith(f"/{namespace}-default")
    assert "CreateQueue" not in broker.stats


def test_a_missing_queue_is_a_clear_error_when_the_broker_may_not_create_queues(make_broker, sqs, namespace):
    broker = make_broker(create_queues=False)

    @dramatiq.actor(broker=broker)
    def task():
        pass

    with pytest.raises(QueueDoesNotExist, match=f"'{namespace}-default-dlq'.*create_queues=False"):
        task.send()
    assert "CreateQueue" not in broker.stats
    assert sqs.list_queues(QueueNamePrefix=namespace).get("QueueUrls", []) == []


def test_without_dead_letters_no_dead_letter_queue_is_made(make_broker, sqs, namespace):
    broker = make_broker(dead_letter=False)
    broker.declare_queue("default")
    broker.queue_url("default")

    names = [url.rsplit("/", 1)[-1] for url in sqs.list_queues(QueueNamePrefix=namespace)["QueueUrls"]]
    assert names == [f"{namespace}-default"]


def test_a_message_received_too_often_is_moved_to_the_dead_letter_queue_by_sqs_itself(make_broker, sqs):
    # The backstop for a message that crashes the worker process before it can be dead-lettered.
    broker = make_broker(max_receive_count=2)

    @dramatiq.actor(broker=broker)
    def crashes_the_process():
        pass

    crashes_the_process.send()
    url = broker.queue_url("default")
    for _ in range(2):  # two workers died holding it
        assert sqs.receive_message(QueueUrl=url, VisibilityTimeout=0, WaitTimeSeconds=1).get("Messages")

    assert sqs.receive_message(QueueUrl=url, WaitTimeSeconds=0).get("Messages") is None
    dead = sqs.receive_message(QueueUrl=broker.dead_letter_queue_url("default"), WaitTimeSeconds=1)
    assert len(dead["Messages"]) == 1


def _redrive_policy(sqs, url: str) -> dict | None:
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["RedrivePolicy"]).get(
        "Attributes", {}
    )
    return json.loads(attributes["RedrivePolicy"]) if "RedrivePolicy" in attributes else None


def test_queues_are_created_with_a_redrive_policy_backstop_by_default(sqs_broker, sqs):
    sqs_broker.declare_queue("default")

    policy = _redrive_policy(sqs, sqs_broker.queue_url("default"))

    assert policy["maxReceiveCount"] == DEFAULT_MAX_RECEIVE_COUNT == 10
    assert policy["deadLetterTargetArn"].endswith(
        sqs_broker.dead_letter_queue_url("default").rsplit("/", 1)[-1]
    )


def test_max_receive_count_none_creates_queues_without_a_redrive_policy(make_broker, sqs):
    broker = make_broker(max_receive_count=None)
    broker.declare_queue("default")

    assert _redrive_policy(sqs, broker.queue_url("default")) is None


def test_a_queue_record_says_where_its_messages_and_dead_letters_go_and_what_it_accepts(
    make_broker, sqs, namespace
):
    sqs.create_queue(
        QueueName=f"{namespace}-orders.fifo", Attributes={"FifoQueue": "true", "MaximumMessageSize": "2048"}
    )
    broker = make_broker()
    broker.declare_queue("orders.fifo")

    queue = broker.queue("orders.fifo")

    assert queue.url == broker.queue_url("orders.fifo")
    assert queue.dead_letter_url == broker.dead_letter_queue_url("orders.fifo")
    assert queue.dead_letter_url.endswith(f"/{namespace}-orders-dlq.fifo")
    assert (queue.fifo, queue.max_size) == (True, 2048)
