"""The stand-ins that let dramatiq's WorkerThread run one SQS event record at a time.

brokers.sqs_events runs each record through `WorkerThread.process_message`, the worker's own path
through the broker's middleware. That path expects a running worker around it: a broker the
middleware enqueue retries on, consumers that take each message back to ack or reject, and a work
queue. These classes are those, reduced to what one record in a Lambda invocation needs.
"""

from __future__ import annotations

import logging
import threading
import weakref
from dataclasses import dataclass
from queue import PriorityQueue
from typing import Any

from dramatiq.broker import Broker, MessageProxy
from dramatiq.message import Message

from brokers.intake import SQSMessage
from brokers.sqs import SQSBroker

logger = logging.getLogger(__name__)

#: Marks a time_limit option the handler did not touch, and one the message did not have.
KEEP = object()
ABSENT = object()


@dataclass
class HeldRetry:
    """What became of the retry the middleware asked for while a record ran."""

    sent: bool


class RecordBroker(Broker):
    """The broker as the middleware see it while a record runs: the same actors and middleware
    objects, but the running message's retry passes through here, so the handler learns whether it
    was sent, a FIFO queue's retry is held back, and a time limit shortened for this invocation is
    not carried into the retry."""

    def __init__(self, broker: SQSBroker) -> None:
        # Not Broker.__init__: the real broker's own collections are shared, never copied.
        self.logger = broker.logger
        self.actors = broker.actors
        self.queues = broker.queues
        self.delay_queues = broker.delay_queues
        self.actor_options = broker.actor_options
        self.middleware = broker.middleware
        self._broker = broker
        self._running: SQSMessage | None = None
        self._fifo = False
        self._time_limit: object = KEEP
        self._retry: HeldRetry | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._broker, name)

    def start(self, running: SQSMessage, *, fifo: bool, time_limit: object) -> None:
        self._running, self._fifo, self._time_limit, self._retry = running, fifo, time_limit, None

    def finish(self) -> HeldRetry | None:
        """The retry asked for, if any; the running message's options are as they came again."""
        if self._running is not None:
            self._restore(self._running)
        retry, self._running, self._retry = self._retry, None, None
        return retry

    def enqueue(self, message: Message[Any], *, delay: int | None = None) -> Message[Any]:
        if self._running is None or message.message_id != self._running.message_id:
            return self._broker.enqueue(message, delay=delay)
        self._restore(self._running)
        if self._fifo:
            logger.info(
                "Message %r on a FIFO queue is not sent again; it comes back in its place after its "
                "visibility timeout.",
                message.message_id,
            )
            self._retry = HeldRetry(sent=False)
            return message
        try:
            sent = self._broker.enqueue(message, delay=delay)
        except Exception as e:
            logger.warning(
                "Could not send the retry of message %r (%s); reporting it.", message.message_id, e
            )
            self._retry = HeldRetry(sent=False)
            return message
        self._retry = HeldRetry(sent=True)
        return sent

    def _restore(self, message: MessageProxy) -> None:
        previous, self._time_limit = self._time_limit, KEEP
        if previous is ABSENT:
            message.options.pop("time_limit", None)
        elif previous is not KEEP:
            message.options["time_limit"] = previous


class Returned:
    """Stands in for the worker's consumer: process_message hands each message back here to be
    acked or rejected; the handler reads what the actor failed with before the worker clears it."""

    def __init__(self) -> None:
        self._exceptions: dict[int, BaseException | None] = {}

    def post_process_message(self, message: SQSMessage) -> None:
        self._exceptions[id(message)] = message.exception

    def take(self, message: SQSMessage) -> BaseException | None:
        return self._exceptions.pop(id(message), None)


class EveryQueue(dict[str, Returned]):
    """The worker thread's consumers by queue name: the same stand-in for every queue."""

    def __init__(self, returned: Returned) -> None:
        super().__init__()
        self._returned = returned

    def __missing__(self, queue_name: str) -> Returned:
        return self._returned


class Untracked(PriorityQueue[Any]):
    """The worker thread's work queue: records are handed over directly, so there is none to count."""

    def task_done(self) -> None:
        pass


_booted: weakref.WeakSet[Broker] = weakref.WeakSet()
_boot_lock = threading.Lock()


def boot_once(broker: Broker) -> None:
    """Run the broker's process_boot hooks once, as a worker process does when it starts."""
    with _boot_lock:
        if broker in _booted:
            return
        _booted.add(broker)
    broker.emit_after("process_boot")
