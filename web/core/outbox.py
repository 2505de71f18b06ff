"""The transactional outbox: a message from Django waits in a row until SQS has it.

enqueue_on_commit (enqueue.py) writes the row in the caller's transaction. After the commit the
message is sent at once and its row deleted (send_outgoing). A row whose direct send did not happen
(SQS unreachable, the process killed between commit and send) is sent by the relay (outbox_relay),
which relay.OutboxRelay runs in every worker process.

Each message stands alone: one SQS refuses (too large, its queue gone) fails by itself while the
rows around it are sent once and deleted, never sent again. A refused row is tried again with a
growing pause and, after OUTBOX_MAX_ATTEMPTS refusals, set aside with its reason for an operator
(/ops/). Attempts that could not reach SQS at all are not counted: an outage sets nothing aside.

Several relays may run at once: each claims its rows in a short transaction before sending them,
skipping rows another relay holds where the database can (Postgres), so relays neither wait for
each other nor send a row twice; a claim that is never finished (the process died) expires and
another relay takes the row.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections, transaction
from django.db.models import F
from django.utils import timezone
from dramatiq import Broker, Message
from dramatiq.errors import ConnectionClosed

from brokers import BatchSendFailed, FifoDelayNotSupported, MessageTooLarge
from web.core.models import OutboxMessage
from web.core.task_results import task_result_discarded

logger = logging.getLogger(__name__)

#: Rows one relay pass claims and sends (in SendMessageBatch requests of 10).
RELAY_BATCH = 100
#: A claimed row is not taken by another relay for this long.
CLAIM_MS = 60_000
#: Longest wait between two attempts at a row SQS keeps refusing.
MAX_BACKOFF_MS = 60_000
#: Longest reason kept on a row.
MAX_REASON_CHARS = 1_000
#: Errors about one message rather than its queue or SQS: the messages around it still go out.
_MESSAGE_ERRORS = (MessageTooLarge, FifoDelayNotSupported)
#: How FailedEntry names an entry that never reached SQS (brokers' batch sender).
_UNREACHABLE_CODE = "ConnectionClosed"

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


@dataclass(frozen=True)
class Refusal:
    """Why one message was not sent."""

    reason: str
    #: SQS was not reached at all, so the attempt says nothing about the message itself.
    unreachable: bool = False


# --- sending -----------------------------------------------------------------------------------------
def send_outgoing(items: list[Outgoing]) -> None:
    """Send committed messages now; delete the outbox rows of those SQS accepted, never raise."""
    if not items:
        return
    if _direct_sends_paused():
        logger.info("SQS was unreachable moments ago; leaving %d message(s) to the outbox relay.", len(items))
        hand_to_relay(items, "SQS was unreachable moments ago.")
        return
    by_broker: dict[int, list[Outgoing]] = defaultdict(list)
    for item in items:
        by_broker[id(item.broker)].append(item)
    for group in by_broker.values():
        refused = send_group(group)
        delete_sent_rows([item for item in group if item.message.message_id not in refused])
        for item in group:
            refusal = refused.get(item.message.message_id)
            if refusal is not None:
                hand_to_relay([item], refusal.reason)
        if any(refusal.unreachable for refusal in refused.values()):
            _pause_direct_sends()


def send_group(items: list[Outgoing]) -> dict[str, Refusal]:
    """Send one broker's messages, a batch per queue; returns the refusals by message id.

    A message SQS refuses fails alone; a queue SQS cannot find fails its own messages; once SQS
    proves unreachable the remaining queues are not tried (their messages fail as unreachable).
    """
    by_queue: dict[str, list[Outgoing]] = defaultdict(list)
    for item in items:
        by_queue[item.message.queue_name].append(item)
    refused: dict[str, Refusal] = {}
    for queue_items in by_queue.values():
        if any(refusal.unreachable for refusal in refused.values()):
            outage = Refusal("SQS could not be reached.", unreachable=True)
            refused.update({item.message.message_id: outage for item in queue_items})
        else:
            refused.update(_send_queue(queue_items))
    return refused


def _send_queue(items: list[Outgoing]) -> dict[str, Refusal]:
    broker = items[0].broker
    batch = getattr(broker, "batch", None)
    refused: dict[str, Refusal] = {}
    enqueued: list[Outgoing] = []
    try:
        with batch() if batch is not None else contextlib.nullcontext():
            for index, item in enumerate(items):
                try:
                    broker.enqueue(item.message, delay=item.delay)
                except _MESSAGE_ERRORS as e:
                    refused[item.message.message_id] = Refusal(_reason(e))
                    continue
                except Exception as e:
                    # The queue (or SQS) failed, not the message: the rest of this queue would too.
                    refusal = Refusal(_reason(e), unreachable=isinstance(e, ConnectionClosed))
                    refused.update({rest.message.message_id: refusal for rest in items[index:]})
                    break
                enqueued.append(item)
    except BatchSendFailed as e:
        # The block's batch went out; exactly these entries of it did not.
        for entry in e.failed:
            unreachable = entry.code == _UNREACHABLE_CODE
            refused[entry.message_id] = Refusal(f"{entry.code}: {entry.reason}", unreachable=unreachable)
    except Exception as e:
        # Which of the batch went out is unknown: keep them all, and let the relay send them again
        # (every actor tolerates a second delivery) rather than lose one.
        logger.warning("Sending %d message(s) to SQS failed: %s", len(enqueued), _reason(e))
        refusal = Refusal(_reason(e), unreachable=isinstance(e, ConnectionClosed))
        refused.update({item.message.message_id: refusal for item in enqueued})
    return refused


def _reason(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"[:MAX_REASON_CHARS]


def delete_sent_rows(items: list[Outgoing]) -> None:
    by_alias: dict[str, list[int]] = defaultdict(list)
    for item in items:
        by_alias[item.using].append(item.outbox_id)
    for alias, ids in by_alias.items():
        try:
            OutboxMessage.objects.using(alias).filter(pk__in=ids).delete()
        except Exception:
            # The relay will send these once more; their actors tolerate a repeat.
            logger.warning("Could not delete %d sent outbox row(s).", len(ids), exc_info=True)


def hand_to_relay(items: list[Outgoing], reason: str) -> None:
    """Leave these rows to the relay from now on, saying why they were not sent directly."""
    for item in items:
        try:
            OutboxMessage.objects.using(item.using).filter(pk=item.outbox_id).update(
                available_at=timezone.now(), last_error=reason[:MAX_REASON_CHARS]
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
    claim, rows = _claim_due(limit=limit, now=now)
    if not rows:
        return 0
    items: list[Outgoing] = []
    refused: dict[str, Refusal] = {}
    for row in rows:
        try:
            items.append(_outgoing(row, broker, now))
        except Exception as e:  # a body that is not a message any more can never be sent
            refused[row.message_id] = Refusal(_reason(e))
    if items:
        refused.update(send_group(items))
    sent = [item for item in items if item.message.message_id not in refused]
    delete_sent_rows(sent)
    for row in rows:
        if row.message_id in refused:
            _record_refusal(row, claim, refused[row.message_id])
    if sent:
        resume_direct_sends()
        logger.info("Relayed %d outbox message(s) to SQS.", len(sent))
    if refused:
        logger.warning("%d outbox message(s) were not sent; they stay in the outbox.", len(refused))
    return len(sent)


def _claim_due(*, limit: int, now: datetime) -> tuple[str, list[OutboxMessage]]:
    claim = uuid.uuid4().hex
    with transaction.atomic():
        due = OutboxMessage.objects.filter(set_aside_at__isnull=True, available_at__lte=now).order_by("id")
        if connections[DEFAULT_DB_ALIAS].features.has_select_for_update_skip_locked:
            # Rows another relay is claiming are passed over, not waited for. Elsewhere (SQLite) the
            # transaction holds the database's write lock, so claims cannot interleave anyway.
            due = due.select_for_update(skip_locked=True)
        ids = list(due.values_list("id", flat=True)[:limit])
        if not ids:
            return claim, []
        OutboxMessage.objects.filter(pk__in=ids, available_at__lte=now).update(
            claim=claim, available_at=now + timedelta(milliseconds=CLAIM_MS), attempts=F("attempts") + 1
        )
    return claim, list(OutboxMessage.objects.filter(claim=claim))


def _record_refusal(row: OutboxMessage, claim: str, refusal: Refusal) -> None:
    mine = OutboxMessage.objects.filter(pk=row.pk, claim=claim)
    now = timezone.now()
    if refusal.unreachable:
        # Not the message's fault: this attempt is not counted, and the row waits like the others.
        mine.update(
            attempts=F("attempts") - 1, available_at=now + _backoff(row.attempts), last_error=refusal.reason
        )
    elif row.attempts >= settings.OUTBOX_MAX_ATTEMPTS:
        mine.update(set_aside_at=now, last_error=refusal.reason)
        logger.warning(
            "Outbox message %r (%s) set aside after %d refused attempts: %s",
            row.message_id,
            row.actor_name,
            row.attempts,
            refusal.reason,
        )
    else:
        mine.update(available_at=now + _backoff(row.attempts), last_error=refusal.reason)


def _backoff(attempts: int) -> timedelta:
    return timedelta(milliseconds=min(MAX_BACKOFF_MS, 1_000 * 2 ** min(attempts, 16)))


def _outgoing(row: OutboxMessage, broker: Broker, now: datetime) -> Outgoing:
    message = Message.decode(row.body.encode("utf-8"))
    delay = None
    if row.delay_ms:
        remaining = row.delay_ms - int((now - row.created_at).total_seconds() * 1000)
        delay = remaining if remaining > 0 else None
    return Outgoing(row.pk, message, delay, broker, DEFAULT_DB_ALIAS)


# --- what operators do with rows set aside -------------------------------------------------------------
def outbox_set_aside_retry(*, row_id: int | None = None) -> int:
    """Put set-aside rows (one, or all) back in line for the relay with fresh attempts; returns how many."""
    rows = OutboxMessage.objects.filter(set_aside_at__isnull=False)
    if row_id is not None:
        rows = rows.filter(pk=row_id)
    count = rows.update(set_aside_at=None, attempts=0, claim="", available_at=timezone.now())
    logger.info("%d set-aside outbox message(s) put back for the relay.", count)
    return count


def outbox_set_aside_discard(*, row_id: int) -> int:
    """Delete one set-aside row: its message is never sent. Returns how many went (0 or 1).

    A django.tasks task whose message it was is marked FAILED (task_result_discarded), so whoever
    waits for its result learns it will never come.
    """
    with transaction.atomic():
        row = OutboxMessage.objects.select_for_update().filter(pk=row_id, set_aside_at__isnull=False).first()
        if row is None:
            return 0
        row.delete()
        task_result_discarded(
            result_id=row.message_id,
            reason=f"Its message was set aside after {row.attempts} refusal(s) ({row.last_error}) "
            "and discarded by an operator; it never ran.",
        )
    logger.warning("Set-aside outbox row %r discarded by an operator; its message is not sent.", row_id)
    return 1
