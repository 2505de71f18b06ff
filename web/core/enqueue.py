"""Sending dramatiq messages from Django: after commit, one SQS batch per request, never lost.

    from web.core.enqueue import enqueue_on_commit

    enqueue_on_commit(make_thumbnails, image_id=image.pk)

The message is written to the outbox (web.core.models.OutboxMessage) in the caller's transaction
and sent only once that transaction commits; a rolled-back transaction sends nothing. Inside a web
request, EnqueueBatchMiddleware (middleware.py) collects every message the request committed and
sends them with one SendMessageBatch when the view is done; elsewhere (shell, actors, commands) each
is sent at its commit. When SQS cannot be reached the row simply stays, and the outbox relay sends
it later (outbox.py), so the caller never sees the failure.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterator
from contextvars import ContextVar
from datetime import timedelta
from functools import partial
from typing import Any

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections, transaction
from django.utils import timezone
from dramatiq import Actor, Broker, Message

from web.core.models import OutboxMessage
from web.core.outbox import Outgoing, hand_to_relay, send_outgoing

logger = logging.getLogger(__name__)

_request_batch: ContextVar[list[Outgoing] | None] = ContextVar("offload_request_batch", default=None)
_senders: set[threading.Thread] = set()
_senders_lock = threading.Lock()


def enqueue_on_commit(
    actor: Actor, /, *args: Any, delay: int | None = None, using: str | None = None, **kwargs: Any
) -> Message:
    """Send `actor(*args, **kwargs)` once the current transaction (on database `using`) commits.

    Returns the message, whose message_id is fixed now. `delay` is in milliseconds.
    """
    message = actor.message(*args, **kwargs)
    return enqueue_message_on_commit(message, broker=actor.broker, delay=delay, using=using)


def enqueue_message_on_commit(
    message: Message, *, broker: Broker, delay: int | None = None, using: str | None = None
) -> Message:
    """Send a message built beforehand (with options of its own, or for another queue) on commit.

    The same path as enqueue_on_commit: the outbox row now, the send after commit.
    """
    using = using or DEFAULT_DB_ALIAS
    row = OutboxMessage.objects.using(using).create(
        queue_name=message.queue_name,
        actor_name=message.actor_name,
        message_id=message.message_id,
        body=message.encode().decode("utf-8"),
        delay_ms=delay,
        available_at=timezone.now() + timedelta(milliseconds=settings.OUTBOX_RELAY_GRACE_MS),
    )
    outgoing = Outgoing(row.pk, message, delay, broker, using)
    transaction.on_commit(partial(_committed, outgoing), using=using)
    return message


def _committed(outgoing: Outgoing) -> None:
    batch = _request_batch.get()
    if batch is not None:
        batch.append(outgoing)
    else:
        send_outgoing([outgoing])


@contextlib.contextmanager
def collect_batch(*, wait_ms: int | None = None) -> Iterator[None]:
    """Hold every message committed inside the block, then send them together in one batch.

    With `wait_ms`, the block waits at most that long for SQS; a slower send finishes in the
    background (its messages are already safe in the outbox), so a caller is never held up by
    SQS's retries.
    """
    if _request_batch.get() is not None:
        yield  # nested: the outermost block sends
        return
    token = _request_batch.set([])
    try:
        yield
    finally:
        pending = _request_batch.get() or []
        _request_batch.reset(token)
        if wait_ms is None:
            send_outgoing(pending)
        elif pending:
            _send_in_background(pending, wait_ms)


def _send_in_background(items: list[Outgoing], wait_ms: int) -> None:
    """Send in a thread and wait for it at most wait_ms; at most OUTBOX_MAX_BACKGROUND_SENDS such
    threads run at once per process, each removing itself when done."""

    def send() -> None:
        try:
            send_outgoing(items)
        finally:
            connections.close_all()  # this thread's own connections
            with _senders_lock:
                _senders.discard(threading.current_thread())

    sender = threading.Thread(target=send, name="outbox-send", daemon=True)
    limit = settings.OUTBOX_MAX_BACKGROUND_SENDS
    with _senders_lock:
        full = len(_senders) >= limit
        if not full:
            _senders.add(sender)
    if full:
        # SQS is slow enough that earlier requests' sends still run: more threads would only pile up.
        logger.warning(
            "%d sends to SQS are still running; leaving %d message(s) to the outbox relay.", limit, len(items)
        )
        hand_to_relay(items, f"{limit} sends to SQS were still running when this message was committed.")
        return
    sender.start()
    sender.join(timeout=wait_ms / 1000)
    if sender.is_alive():
        logger.warning("SQS did not answer within %d ms; answering while the send goes on.", wait_ms)


def wait_for_background_sends(timeout_ms: int = 30_000) -> bool:
    """Wait for sends that outlived their request; True when none is left (for shutdown and tests)."""
    deadline = time.monotonic() + timeout_ms / 1000
    with _senders_lock:
        senders = list(_senders)
    for sender in senders:
        sender.join(timeout=max(0.0, deadline - time.monotonic()))
    with _senders_lock:
        return not _senders
