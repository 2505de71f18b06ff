"""What enqueue and batch() put on the queue."""

from __future__ import annotations

import json
import threading
import time

import dramatiq
import pytest
from dramatiq.errors import ConnectionClosed
from dramatiq.middleware import Middleware

from brokers import BatchSendFailed, FifoDelayNotSupported, MessageTooLarge, SQSBroker
from tests.brokers.conftest import queue_counts, receive_all


def test_the_body_is_the_plain_utf8_json_of_the_dramatiq_message(sqs_broker, sqs):
    @dramatiq.actor(broker=sqs_broker)
    def greet(name):
        pass

    message = greet.send("Zoë 🚀")

    [raw] = receive_all(sqs, sqs_broker.queue_url("default"))
    body = json.loads(raw["Body"])
    assert body["message_id"] == message.message_id
    assert body["actor_name"] == "greet"
    assert body["args"] == ["Zoë 🚀"]


def test_a_message_larger_than_the_queue_allows_is_refused_at_enqueue(make_broker, sqs, namespace):
    sqs.create_queue(QueueName=f"{namespace}-default", Attributes={"MaximumMessageSize": "1024"})
    broker = make_broker()

    @dramatiq.actor(broker=broker)
    def store(blob):
        pass

    store.send("x" * 500)
    with pytest.raises(MessageTooLarge, match=r"is 1,\d{3} bytes; the queue accepts at most 1,024 bytes"):
        store.send("x" * 1000)

    assert queue_counts(sqs, broker.queue_url("default"))["visible"] == 1


def test_a_batch_sends_every_message_of_the_block_with_send_message_batch(sqs_broker, sqs):
    @dramatiq.actor(broker=sqs_broker)
    def task(n):
        pass

    task.send(-1)  # sets the queue up, so the count below is the batch alone
    before = sqs_broker.stats
    with sqs_broker.batch():
        for n in range(25):
            task.send(n)
        dramatiq.group([task.message(100 + n) for n in range(5)], broker=sqs_broker).run()
        assert queue_counts(sqs, sqs_broker.queue_url("default"))["visible"] == 1

    after = sqs_broker.stats
    assert after["SendMessageBatch"] - before.get("SendMessageBatch", 0) == 3
    assert after["SendMessage"] == before["SendMessage"]
    received = receive_all(sqs, sqs_broker.queue_url("default"))
    assert sorted(json.loads(m["Body"])["args"][0] for m in received) == [-1, *range(25), *range(100, 105)]


def test_a_batch_is_split_so_no_request_carries_more_than_one_mebibyte(sqs_broker, sqs):
    @dramatiq.actor(broker=sqs_broker)
    def store(blob):
        pass

    blob = "x" * 200_000
    with sqs_broker.batch():
        for _ in range(7):
            store.send(blob)

    assert sqs_broker.stats["SendMessageBatch"] == 2  # 5 x 200 kB fit in one request, 7 do not
    assert queue_counts(sqs, sqs_broker.queue_url("default"))["visible"] == 7


def test_messages_enqueued_before_an_error_in_the_block_are_still_sent(sqs_broker, sqs):
    @dramatiq.actor(broker=sqs_broker)
    def task(n):
        pass

    def send_two_then_fail():
        with sqs_broker.batch():
            task.send(1)
            task.send(2)
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        send_two_then_fail()

    assert queue_counts(sqs, sqs_broker.queue_url("default"))["visible"] == 2


def test_a_batch_that_cannot_reach_sqs_names_the_messages_it_could_not_send(sqs_endpoint, namespace):
    broker = SQSBroker(namespace=namespace, endpoint_url=sqs_endpoint, region_name="us-east-1")

    @dramatiq.actor(broker=broker)
    def task(n):
        pass

    task.send(0)  # the queue is known; now the server "goes away"
    broker.client.meta.events.register("before-send.sqs.SendMessageBatch", _refuse_connection)

    sent = []

    def send_two():
        with broker.batch():
            sent.extend([task.send(1), task.send(2)])

    with pytest.raises(BatchSendFailed) as raised:
        send_two()
    first, second = sent

    assert [entry.message_id for entry in raised.value.failed] == [first.message_id, second.message_id]
    assert raised.value.sent == 0
    assert first.message_id in str(raised.value)


def _refuse_connection(**_):
    raise ConnectionClosed("connection refused")


def test_delays_up_to_fifteen_minutes_use_sqs_delays_rounded_up_to_whole_seconds(sqs_broker, sqs):
    @dramatiq.actor(broker=sqs_broker)
    def task():
        pass

    sent = task.send_with_options(delay=1_200)

    counts = queue_counts(sqs, sqs_broker.queue_url("default"))
    assert counts == {"visible": 0, "in_flight": 0, "delayed": 1}
    assert sent.options["eta"] >= time.time() * 1000 + 1_000


def test_a_delay_beyond_fifteen_minutes_is_kept_with_its_eta(sqs_broker, sqs):
    @dramatiq.actor(broker=sqs_broker)
    def task():
        pass

    before = time.time() * 1000
    sent = task.send_with_options(delay=3 * 60 * 60 * 1000)

    assert sent.options["eta"] >= before + 3 * 60 * 60 * 1000
    assert queue_counts(sqs, sqs_broker.queue_url("default"))["delayed"] == 1


def test_a_fifo_message_carries_its_group_and_deduplication_ids(sqs_broker, sqs):
    @dramatiq.actor(broker=sqs_broker, queue_name="orders.fifo")
    def place(order):
        pass

    first = place.send("a")
    second = place.send_with_options(args=("b",), message_group_id="customer-7")

    received = receive_all(sqs, sqs_broker.queue_url("orders.fifo"), MessageSystemAttributeNames=["All"])
    by_id = {json.loads(m["Body"])["message_id"]: m["Attributes"] for m in received}
    assert by_id[first.message_id]["MessageGroupId"] == "default"
    assert by_id[first.message_id]["MessageDeduplicationId"] == first.message_id
    assert by_id[second.message_id]["MessageGroupId"] == "customer-7"


def test_a_delay_on_a_fifo_queue_is_a_clear_error(sqs_broker):
    @dramatiq.actor(broker=sqs_broker, queue_name="orders.fifo")
    def place(order):
        pass

    with pytest.raises(FifoDelayNotSupported, match="FIFO queues do not delay"):
        place.send_with_options(args=("a",), delay=5_000)


def test_concurrent_sends_from_many_threads_share_requests_and_each_returns_once_accepted(sqs_broker, sqs):
    @dramatiq.actor(broker=sqs_broker)
    def task(thread, n):
        pass

    task.send(-1, -1)  # the queue is set up before the threads race
    url = sqs_broker.queue_url("default")
    threads, per_thread = 8, 25
    start = threading.Barrier(threads)
    accepted = []

    def produce(thread):
        start.wait()
        for n in range(per_thread):
            task.send(thread, n)
        accepted.append(queue_counts(sqs, url)["visible"])

    workers = [threading.Thread(target=produce, args=(t,)) for t in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()

    # A thread's messages were all in SQS by the time its last send returned.
    assert min(accepted) >= per_thread + 1
    assert queue_counts(sqs, url)["visible"] == threads * per_thread + 1
    stats = sqs_broker.stats
    requests = stats.get("SendMessage", 0) + stats.get("SendMessageBatch", 0) - 1
    assert stats.get("SendMessageBatch", 0) >= 1
    assert requests < threads * per_thread


class _Interrupted(BaseException):
    """Stands for what ends a send without being an error: a time limit, a shutdown."""


class _CountEnqueues(Middleware):
    def __init__(self, expected: int) -> None:
        self.count = 0
        self.lock = threading.Lock()
        self.all_in = threading.Event()
        self.expected = expected

    def before_enqueue(self, broker, message, delay):
        with self.lock:
            self.count += 1
            if self.count == self.expected:
                self.all_in.set()


def test_a_group_send_interrupted_by_a_base_exception_releases_every_waiting_sender(make_broker, sqs):
    threads = 6
    counter = _CountEnqueues(expected=1 + threads)
    broker = make_broker(middleware=[counter])

    @dramatiq.actor(broker=broker)
    def task(n):
        pass

    url = broker.queue_url("default")
    interrupted = threading.Event()

    def hold_the_first_send_until_everyone_waits(**_):
        # While this lone send is in flight, the other threads' messages line up behind it.
        counter.all_in.wait(10)

    def interrupt_the_group_send(**_):
        if not interrupted.is_set():
            interrupted.set()
            raise _Interrupted

    broker.client.meta.events.register(
        "before-send.sqs.SendMessage", hold_the_first_send_until_everyone_waits
    )
    broker.client.meta.events.register("before-send.sqs.SendMessageBatch", interrupt_the_group_send)
    outcomes: dict[int, str] = {}

    def send(n):
        try:
            task.send(n)
        except _Interrupted:
            outcomes[n] = "interrupted"
        else:
            outcomes[n] = "sent"

    first = threading.Thread(target=send, args=(0,), daemon=True)
    first.start()
    others = [threading.Thread(target=send, args=(n,), daemon=True) for n in range(1, threads + 1)]
    for thread in others:
        thread.start()
    for thread in [first, *others]:
        thread.join(timeout=10)

    assert interrupted.is_set()  # a group send did carry other threads' messages
    assert not any(thread.is_alive() for thread in [first, *others])
    assert sorted(outcomes.values()) == ["interrupted"] + ["sent"] * threads
    received = receive_all(sqs, url)
    assert sorted(json.loads(m["Body"])["args"][0] for m in received) == sorted(
        n for n, outcome in outcomes.items() if outcome == "sent"
    )
