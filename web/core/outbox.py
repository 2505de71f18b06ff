"""The transactional outbox: a message from Django waits in a row until SQS has it.

enqueue_on_commit (enqueue.py) writes the row in the caller's transaction. After the commit the
message is sent at once and its row deleted (send_outgoing). A row whose direct send did not happen
(SQS unreachable, the process killed between commit and send) is sent by the relay (outbox_relay),
which relay.OutboxRelay runs in every worker process. Several relays may run at once: each claims
rows before sending them, so a row goes out once per claim; a claim that is never finished (the
process died) expires and another relay takes the row.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS
from django.db.models import F
from django.utils import timezone
from dramatiq import Broker, Message

from web.core.models import OutboxMessage

logger = logging.getLogger(__name__)

#: Rows one relay pass claims and sends (in SendMessageBatch requests of 10).
RELAY_BATCH = 100
#: A claimed row is not taken by another relay for this long.
CLAIM_MS = 60_000
#: Longest wait between two attempts at a row SQS keeps refusing.
MAX_BACKOFF_MS = 60_000

_pause_lock = threading.Lock()
_paused_until = 0.0


@dataclass(frozen=True)
class Outgoing:
    """A committed message on its way to SQS, and the outbox row that keeps it until SQS has it."""

    outbox_id: int
    message: Message
    delay: int | None
    broker: Broker
    using: str


# --- the direct send after commit -------------------------------------------------------------------
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
        _paused_until = time.monotonic() + settings.OUTBOX_DIRECT_SEND_PAUSE_MS / 1000


def _direct_sends_paused() -> bool:
    with _pause_lock:
        return time.monotonic() < _paused_until


def resume_direct_sends() -> None:
    """Forget an earlier failure, so the next commit tries SQS at once (the relay calls this)."""
    global _paused_until
    with _pause_lock:
        _paused_until = 0.0


# --- the relay ---------------------------------------------------------------------------------------
def outbox_relay(*, broker: Broker, limit: int = RELAY_BATCH) -> int:
    """Send up to `limit` due outbox rows; returns how many SQS accepted."""
    now = timezone.now()
    due_rows = OutboxMessage.objects.filter(available_at__lte=now).order_by("id")
    due = list(due_rows.values_list("id", flat=True)[:limit])
    if not due:
        return 0
    claim = uuid.uuid4().hex
    OutboxMessage.objects.filter(pk__in=due, available_at__lte=now).update(
        claim=claim, available_at=now + timedelta(milliseconds=CLAIM_MS), attempts=F("attempts") + 1
    )
    rows = list(OutboxMessage.objects.filter(claim=claim))
    if not rows:
        return 0
    items = [_outgoing(row, broker, now) for row in rows]
    failed = send_group(items)
    sent = [item for item in items if item.message.message_id not in failed]
    delete_sent_rows(sent)
    for row in rows:
        reason = failed.get(row.message_id)
        if reason is not None:
            backoff = min(MAX_BACKOFF_MS, 1_000 * 2 ** min(row.attempts, 16))
            OutboxMessage.objects.filter(pk=row.pk, claim=claim).update(
                available_at=timezone.now() + timedelta(milliseconds=backoff), last_error=reason[:1000]
            )
    if sent:
        resume_direct_sends()
        logger.info("Relayed %d outbox message(s) to SQS.", len(sent))
    if failed:
        logger.warning("SQS still refuses %d outbox message(s); they stay in the outbox.", len(failed))
    return len(sent)


def _outgoing(row: OutboxMessage, broker: Broker, now: datetime) -> Outgoing:
    message = Message.decode(row.body.encode("utf-8"))
    delay = None
    if row.delay_ms:
        remaining = row.delay_ms - int((now - row.created_at).total_seconds() * 1000)
        delay = remaining if remaining > 0 else None
    return Outgoing(row.pk, message, delay, broker, DEFAULT_DB_ALIAS)
