"""A batch whose queue vanished reports each of its messages, as any other refused batch does."""

from __future__ import annotations

import dramatiq
import pytest

from brokers import BatchSendFailed


def test_a_batch_to_a_queue_deleted_since_it_was_looked_up_names_every_message_it_could_not_send(
    sqs_broker, sqs
):
    @dramatiq.actor(broker=sqs_broker)
    def task(n):
        pass

    sqs.delete_queue(QueueUrl=sqs_broker.queue_url("default"))
    messages = [task.message(n) for n in range(3)]
    with pytest.raises(BatchSendFailed) as failure:
        _send_in_a_batch(sqs_broker, messages)

    assert failure.value.sent == 0
    assert [(f.message_id, f.queue_name, f.code) for f in failure.value.failed] == [
        (m.message_id, "default", "QueueDoesNotExist") for m in messages
    ]
    assert "the queue does not exist" in failure.value.failed[0].reason


def _send_in_a_batch(broker, messages):
    with broker.batch():
        for message in messages:
            broker.enqueue(message)
