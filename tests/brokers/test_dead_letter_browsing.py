"""Looking at dead letters one by one, and retrying or deleting one, against the SQS server."""

from __future__ import annotations

import dramatiq
import pytest

from brokers import DeadLetterNotFound, MalformedMessage
from tests.brokers.conftest import object_keys, queue_counts, wait_until


@pytest.fixture
def failing(sqs_broker):
    """An actor that fails until told otherwise, and a list of what it did once it works."""
    state = {"fixed": False, "charged": []}

    @dramatiq.actor(broker=sqs_broker, max_retries=0)
    def charge(order_id):
        if not state["fixed"]:
            raise ConnectionError(f"payment provider down for order {order_id}")
        state["charged"].append(order_id)

    return charge, state


def _dead_letters_of(sqs_broker, start_worker, charge, order_ids):
    for order_id in order_ids:
        charge.send(order_id)
    worker = start_worker(sqs_broker)
    wait_until(lambda: sqs_broker.queue_counts("default")["dead_letters"] == len(order_ids))
    sqs_broker.join("default", timeout=10_000)
    return worker


def test_a_peek_lists_every_dead_letter_with_its_reason_and_leaves_them_all_visible(
    sqs_broker, start_worker, failing, sqs
):
    charge, _ = failing
    _dead_letters_of(sqs_broker, start_worker, charge, range(13))
    queue = sqs_broker.queue("default")

    letters = sqs_broker.dead_letters.peek(queue)

    assert sorted(letter.message.args[0] for letter in letters) == list(range(13))
    first = letters[0]
    assert (first.actor, first.queue, first.error_type, first.attempts) == (
        "charge",
        "default",
        "ConnectionError",
        1,
    )
    assert first.error == f"payment provider down for order {first.message.args[0]}"
    assert [letter.failed_at for letter in letters] == sorted(letter.failed_at for letter in letters)
    assert queue_counts(sqs, queue.dead_letter_url) == {"visible": 13, "in_flight": 0, "delayed": 0}


def test_a_peek_shows_at_most_its_limit(sqs_broker, start_worker, failing):
    charge, _ = failing
    _dead_letters_of(sqs_broker, start_worker, charge, range(12))

    assert len(sqs_broker.dead_letters.peek(sqs_broker.queue("default"), limit=5)) == 5


def test_retrying_one_dead_letter_runs_it_again_and_leaves_the_others(sqs_broker, start_worker, failing, sqs):
    charge, state = failing
    _dead_letters_of(sqs_broker, start_worker, charge, [1, 2, 3])
    queue = sqs_broker.queue("default")
    chosen = next(letter for letter in sqs_broker.dead_letters.peek(queue) if letter.message.args == (2,))

    state["fixed"] = True
    retried = sqs_broker.dead_letters.retry(queue, chosen.id)

    assert retried.message.args == (2,)
    wait_until(lambda: state["charged"] == [2], what="order 2 to be charged")
    sqs_broker.join("default", timeout=10_000)
    remaining = sqs_broker.dead_letters.peek(queue)
    assert sorted(letter.message.args[0] for letter in remaining) == [1, 3]
    assert queue_counts(sqs, queue.dead_letter_url)["visible"] == 2


def test_deleting_one_dead_letter_removes_only_it(sqs_broker, start_worker, failing):
    charge, state = failing
    _dead_letters_of(sqs_broker, start_worker, charge, [1, 2, 3])
    queue = sqs_broker.queue("default")
    chosen = next(letter for letter in sqs_broker.dead_letters.peek(queue) if letter.message.args == (3,))
    state["fixed"] = True  # were the letter sent back instead of deleted, it would now be charged

    sqs_broker.dead_letters.delete(queue, chosen.id)

    assert sorted(letter.message.args[0] for letter in sqs_broker.dead_letters.peek(queue)) == [1, 2]
    with pytest.raises(DeadLetterNotFound):
        sqs_broker.dead_letters.get(queue, chosen.id)
    sqs_broker.join("default", timeout=10_000)  # a deleted letter sent back by mistake would run by now
    assert state["charged"] == []


def test_one_dead_letter_is_shown_by_its_id_with_body_and_options(sqs_broker, start_worker, failing):
    charge, _ = failing
    _dead_letters_of(sqs_broker, start_worker, charge, [7])
    queue = sqs_broker.queue("default")
    [listed] = sqs_broker.dead_letters.peek(queue)

    letter = sqs_broker.dead_letters.get(queue, listed.id)

    assert letter.message.args == (7,)
    assert '"args":[7]' in letter.body
    assert "ConnectionError" in letter.message.options["traceback"]
    assert letter.receive_count == 2  # the peek and this look each received it once
    assert sqs_broker.dead_letters.get(queue, listed.id).receive_count == 3


def test_a_body_that_is_not_a_message_can_be_shown_and_deleted_but_not_retried(sqs_broker, sqs):
    sqs_broker.declare_queue("default")
    queue = sqs_broker.queue("default")
    sqs.send_message(QueueUrl=queue.dead_letter_url, MessageBody="not a message")
    [letter] = sqs_broker.dead_letters.peek(queue)

    assert letter.message is None
    assert letter.actor == ""
    assert letter.error_type == ""  # SQS put it there itself, so no reason came with it
    with pytest.raises(
        MalformedMessage, match="cannot run, only be deleted: The body is not a dramatiq message"
    ):
        sqs_broker.dead_letters.retry(queue, letter.id)
    assert queue_counts(sqs, queue.dead_letter_url)["visible"] == 1

    sqs_broker.dead_letters.delete(queue, letter.id)

    assert sqs_broker.dead_letters.peek(queue) == []


def test_a_dead_letter_nobody_has_is_reported_as_not_found_and_the_others_stay_visible(
    sqs_broker, start_worker, failing, sqs
):
    charge, _ = failing
    _dead_letters_of(sqs_broker, start_worker, charge, [1, 2])
    queue = sqs_broker.queue("default")

    with pytest.raises(DeadLetterNotFound, match="'no-such-id' is not in the dead-letter queue"):
        sqs_broker.dead_letters.retry(queue, "no-such-id")

    assert queue_counts(sqs, queue.dead_letter_url) == {"visible": 2, "in_flight": 0, "delayed": 0}


def test_peeking_at_an_empty_dead_letter_queue_makes_no_receive(sqs_broker):
    sqs_broker.declare_queue("default")
    queue = sqs_broker.queue("default")
    before = sqs_broker.stats.get("ReceiveMessage", 0)

    assert sqs_broker.dead_letters.peek(queue) == []
    assert sqs_broker.stats.get("ReceiveMessage", 0) == before


@pytest.fixture
def large_failing(make_broker, bucket):
    """A broker that sends bodies over 1 KiB through S3, and an actor that fails until told otherwise."""
    broker = make_broker(payload_bucket=bucket, payload_threshold=1_024)
    state = {"fixed": False, "sizes": []}

    @dramatiq.actor(broker=broker, max_retries=0)
    def store(blob):
        if not state["fixed"]:
            raise ConnectionError("the archive is down")
        state["sizes"].append(len(blob))

    return broker, store, state


def test_a_dead_letter_that_came_through_s3_is_listed_by_its_reason_and_shown_with_its_payload(
    large_failing, start_worker, s3, bucket
):
    broker, store, _ = large_failing
    _dead_letters_of(broker, start_worker, store, ["x" * 5_000])
    queue = broker.queue("default")

    [listed] = broker.dead_letters.peek(queue)
    letter = broker.dead_letters.get(queue, listed.id)

    assert (listed.actor, listed.error_type, listed.message) == ("store", "ConnectionError", None)
    assert listed.pointer is not None
    assert listed.can_retry
    assert letter.message.args == ("x" * 5_000,)
    assert str(letter.pointer) == f"s3://{bucket}/{object_keys(s3, bucket)[0]}"


def test_retrying_a_dead_letter_that_came_through_s3_runs_it_and_deletes_its_old_object(
    large_failing, start_worker, s3, bucket
):
    broker, store, state = large_failing
    _dead_letters_of(broker, start_worker, store, ["y" * 5_000])
    queue = broker.queue("default")
    [listed] = broker.dead_letters.peek(queue)
    [old_key] = object_keys(s3, bucket)

    state["fixed"] = True
    broker.dead_letters.retry(queue, listed.id)

    wait_until(lambda: state["sizes"] == [5_000], what="the payload to be stored")
    broker.join("default", timeout=10_000)
    wait_until(lambda: old_key not in object_keys(s3, bucket), what="the old object to go")
    assert broker.dead_letters.peek(queue) == []


def test_deleting_a_dead_letter_that_came_through_s3_deletes_its_object(
    large_failing, start_worker, s3, bucket
):
    broker, store, _ = large_failing
    _dead_letters_of(broker, start_worker, store, ["z" * 5_000])
    queue = broker.queue("default")
    [listed] = broker.dead_letters.peek(queue)

    broker.dead_letters.delete(queue, listed.id)

    assert object_keys(s3, bucket) == []
    assert broker.dead_letters.peek(queue) == []


def test_a_dead_letter_whose_s3_payload_is_gone_can_only_be_deleted(large_failing, start_worker, s3, bucket):
    broker, store, _ = large_failing
    _dead_letters_of(broker, start_worker, store, ["w" * 5_000])
    queue = broker.queue("default")
    [listed] = broker.dead_letters.peek(queue)
    s3.delete_object(Bucket=bucket, Key=object_keys(s3, bucket)[0])  # the bucket's lifecycle rule got to it

    letter = broker.dead_letters.get(queue, listed.id)

    assert letter.message is None
    assert not letter.can_retry
    assert letter.malformed.startswith("its S3 payload cannot be read")
    with pytest.raises(MalformedMessage, match="cannot run, only be deleted: its S3 payload cannot be read"):
        broker.dead_letters.retry(queue, listed.id)
    broker.dead_letters.delete(queue, listed.id)
    assert broker.dead_letters.peek(queue) == []
