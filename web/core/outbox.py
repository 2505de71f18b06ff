"""The outbox relay: sends the messages whose direct send after commit did not happen.

Runs as a thread in every worker process (web.core.middleware.OutboxRelay). Several relays may
run at once: each claims rows before sending them, so a row goes out once per claim; a claim that
is never finished (the process died) expires and another relay takes the row.
"""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta
from typing import Any

from django.db import DEFAULT_DB_ALIAS
from django.db.models import F
from django.utils import timezone
from dramatiq import Broker, Message

from web.core.enqueue import Outgoing, delete_sent_rows, resume_direct_sends, send_group
from web.core.models import OutboxMessage

logger = logging.getLogger(__name__)

#: Rows one relay pass claims and sends (in SendMessageBatch requests of 10).
RELAY_BATCH = 100
#: A claimed row is not taken by another relay for this long.
CLAIM_MS = 60_000
#: Longest wait between two attempts at a row SQS keeps refusing.
MAX_BACKOFF_MS = 60_000


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


def _outgoing(row: OutboxMessage, broker: Broker, now: Any) -> Outgoing:
    message = Message.decode(row.body.encode("utf-8"))
    delay = None
    if row.delay_ms:
        remaining = row.delay_ms - int((now - row.created_at).total_seconds() * 1000)
        delay = remaining if remaining > 0 else None
    return Outgoing(row.pk, message, delay, broker, DEFAULT_DB_ALIAS)
