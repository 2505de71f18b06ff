"""Sending dramatiq messages from Django: after commit, one SQS batch per request, never lost.

    from web.core.enqueue import enqueue_on_commit

    enqueue_on_commit(make_thumbnails, image_id=image.pk)

The message is written to the outbox (web.core.models.OutboxMessage) in the caller's transaction
and sent only once that transaction commits; a rolled-back transaction sends nothing. Inside a web
request, EnqueueBatchMiddleware collects every message the request committed and sends them with
one SendMessageBatch when the view is done; elsewhere (shell, actors, commands) each is sent at its
commit. When SQS cannot be reached the row simply stays, and the outbox relay sends it later, so
the caller never sees the failure.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import timedelta
from functools import partial
from typing import Any

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections, transaction
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from dramatiq import Actor, Broker, Message

from web.core.models import OutboxMessage

logger = logging.getLogger(__name__)

#: How long after a failed direct send the web process leaves sending to the relay, in milliseconds:
#: a request should not wait on SQS's retries again while SQS is known to be down.
DEFAULT_DIRECT_SEND_PAUSE_MS = 10_000
#: How long the relay leaves a fresh outbox row to the committing process, in milliseconds.
DEFAULT_RELAY_GRACE_MS = 30_000
#: Longest time a request waits for its batch to reach SQS before answering anyway, in milliseconds.
DEFAULT_SEND_WAIT_MS = 500

_request_batch: ContextVar[list[Outgoing] | None] = ContextVar("offload_request_batch", default=None)
_pause_lock = threading.Lock()
_senders: set[threading.Thread] = set()
_senders_lock = threading.Lock()
_paused_until = 0.0


@dataclass(frozen=True)
class Outgoing:
    """A committed message on its way to SQS, and the outbox row that keeps it until SQS has it."""

    outbox_id: int
    message: Message
    delay: int | None
    broker: Broker
    using: str


def enqueue_on_commit(
    actor: Actor, /, *args: Any, delay: int | None = None, using: str | None = None, **kwargs: Any
) -> Message:
    """Send `actor(*args, **kwargs)` once the current transaction (on database `using`) commits.

    Returns the message, whose message_id is fixed now. `delay` is in milliseconds.
    """
    using = using or DEFAULT_DB_ALIAS
    message = actor.message(*args, **kwargs)
    row = OutboxMessage.objects.using(using).create(
        queue_name=message.queue_name,
        actor_name=message.actor_name,
        message_id=message.message_id,
        body=message.encode().decode("utf-8"),
        delay_ms=delay,
        available_at=timezone.now() + timedelta(milliseconds=_setting("OUTBOX_RELAY_GRACE_MS")),
    )
    outgoing = Outgoing(row.pk, message, delay, actor.broker, using)
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


class EnqueueBatchMiddleware:
    """Sends all the messages a request enqueued (and committed) in one SendMessageBatch at its end."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        with collect_batch(wait_ms=_setting("OUTBOX_SEND_WAIT_MS")):
            return self.get_response(request)


def _send_in_background(items: list[Outgoing], wait_ms: int) -> None:
    def send() -> None:
        try:
            send_outgoing(items)
        finally:
            connections.close_all()  # this thread's own connections

    sender = threading.Thread(target=send, name="outbox-send", daemon=True)
    with _senders_lock:
        _senders.add(sender)
    sender.start()
    sender.join(timeout=wait_ms / 1000)
    if sender.is_alive():
        logger.warning("SQS did not answer within %d ms; answering while the send goes on.", wait_ms)
    else:
        with _senders_lock:
            _senders.discard(sender)


def wait_for_background_sends(timeout_ms: int = 30_000) -> bool:
    """Wait for sends that outlived their request; True when none is left (for shutdown and tests)."""
    deadline = time.monotonic() + timeout_ms / 1000
    with _senders_lock:
        senders = list(_senders)
    for sender in senders:
        sender.join(timeout=max(0.0, deadline - time.monotonic()))
    with _senders_lock:
        _senders.difference_update(s for s in senders if not s.is_alive())
        return not _senders


def send_outgoing(items: list[Outgoing]) -> None:
    """Send committed messages now; delete the outbox rows of those SQS accepted, never raise."""
    if not items:
        return
    if _direct_sends_paused():
        logger.info("SQS was unreachable moments ago; leaving %d message(s) to the outbox relay.", len(items))
        _hand_to_relay(items, "SQS was unreachable moments ago.")
        return
    by_broker: dict[int, list[Outgoing]] = {}
    for item in items:
        by_broker.setdefault(id(item.broker), []).append(item)
    for group in by_broker.values():
        failed = send_group(group)
        sent = [item for item in group if item.message.message_id not in failed]
        delete_sent_rows(sent)
        if failed:
            unsent = [item for item in group if item.message.message_id in failed]
            _hand_to_relay(unsent, _first_reason(failed))


def send_group(items: list[Outgoing]) -> dict[str, str]:
    """Send one broker's messages in a batch; returns {message_id: reason} of those not sent."""
    from brokers import BatchSendFailed

    broker = items[0].broker
    batch = getattr(broker, "batch", None)
    try:
        with batch() if batch is not None else contextlib.nullcontext():
            for item in items:
                broker.enqueue(item.message, delay=item.delay)
    except BatchSendFailed as e:
        _pause_direct_sends()
        return {entry.message_id: f"{entry.code}: {entry.reason}" for entry in e.failed}
    except Exception as e:
        # Some may have gone out before the error; the relay sending them again is safe, since
        # every actor tolerates a second delivery.
        _pause_direct_sends()
        logger.warning(
            "Could not send %d message(s) to SQS; the outbox keeps them.", len(items), exc_info=True
        )
        return {item.message.message_id: f"{type(e).__name__}: {e}" for item in items}
    return {}


def _first_reason(failed: dict[str, str]) -> str:
    return next(iter(failed.values()), "")[:1000]


def delete_sent_rows(items: list[Outgoing]) -> None:
    by_alias: dict[str, list[int]] = {}
    for item in items:
        by_alias.setdefault(item.using, []).append(item.outbox_id)
    for alias, ids in by_alias.items():
        try:
            OutboxMessage.objects.using(alias).filter(pk__in=ids).delete()
        except Exception:
            # The relay will send these once more; their actors tolerate a repeat.
            logger.warning("Could not delete %d sent outbox row(s).", len(ids), exc_info=True)


def _hand_to_relay(items: list[Outgoing], reason: str) -> None:
    for item in items:
        try:
            OutboxMessage.objects.using(item.using).filter(pk=item.outbox_id).update(
                available_at=timezone.now(), last_error=reason[:1000]
            )
        except Exception:
            logger.warning("Could not mark outbox row %r for the relay.", item.outbox_id, exc_info=True)


def _pause_direct_sends() -> None:
    global _paused_until  # one pause per process, shared by every request thread
    with _pause_lock:
        _paused_until = time.monotonic() + _setting("OUTBOX_DIRECT_SEND_PAUSE_MS") / 1000


def _direct_sends_paused() -> bool:
    with _pause_lock:
        return time.monotonic() < _paused_until


def resume_direct_sends() -> None:
    """Forget an earlier failure, so the next commit tries SQS at once (the relay calls this)."""
    global _paused_until
    with _pause_lock:
        _paused_until = 0.0


def _setting(name: str) -> int:
    defaults = {
        "OUTBOX_DIRECT_SEND_PAUSE_MS": DEFAULT_DIRECT_SEND_PAUSE_MS,
        "OUTBOX_RELAY_GRACE_MS": DEFAULT_RELAY_GRACE_MS,
        "OUTBOX_SEND_WAIT_MS": DEFAULT_SEND_WAIT_MS,
    }
    return int(getattr(settings, name, defaults[name]))
