from __future__ import annotations

import json
from typing import Any

import dramatiq
from django.contrib import messages
from django.contrib.admin.views.decorators import staff_member_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST
from dramatiq.errors import ConnectionClosed

from brokers import DeadLetterNotFound, SQSBrokerError
from brokers.deadletters import PEEK_VISIBILITY_MS
from web.core.outbox import outbox_set_aside_discard, outbox_set_aside_retry
from web.ops import selectors, services
from web.ops.errors import describe_broker_error
from web.ops.models import TaskRun

_BROKER_ERRORS = (ConnectionClosed, SQSBrokerError)


@staff_member_required
@require_GET
def index(request: HttpRequest) -> HttpResponse:
    status = request.GET.get("status") or None
    return render(
        request,
        "ops/index.html",
        {
            **_queues_context(),
            "dashboard": selectors.dashboard(now=timezone.now()),
            "runs": selectors.task_run_recent(status=status),
            "statuses": TaskRun.Status.choices,
            "status": status,
        },
    )


@staff_member_required
@require_GET
def queues(request: HttpRequest) -> HttpResponse:
    """The counts fragment the page polls (htmx)."""
    return render(request, "ops/_queues.html", _queues_context())


def _queues_context() -> dict[str, Any]:
    return {
        "queues": selectors.queue_counts(broker=dramatiq.get_broker()),
        "outbox_waiting": selectors.outbox_waiting(),
        "outbox_set_aside": selectors.outbox_set_aside(),
        "redrives": selectors.dead_letter_redrives_recent(),
    }


@staff_member_required
@require_POST
def redrive(request: HttpRequest, queue_name: str) -> HttpResponse:
    """Retry all: a worker sends the queue's dead letters back; the page shows how it went."""
    try:
        redrive, started = services.dead_letter_redrive_request(
            broker=dramatiq.get_broker(), queue_name=queue_name, requested_by=request.user.get_username()
        )
    except ValueError:
        raise Http404("No such queue.") from None
    if started:
        messages.success(
            request,
            f"A worker is sending every dead letter of {queue_name} back to be tried again; "
            "see Retry all below.",
        )
    else:
        messages.info(
            request,
            f"A retry of all dead letters of {queue_name} is already under way (asked for by "
            f"{redrive.requested_by or 'someone'}); see Retry all below.",
        )
    return redirect("ops:index")


@staff_member_required
@require_GET
def dead_letters(request: HttpRequest, queue_name: str) -> HttpResponse:
    try:
        peek = selectors.dead_letters_peek(broker=dramatiq.get_broker(), queue_name=queue_name)
    except ValueError:
        raise Http404("No such queue.") from None
    context = {"queue_name": queue_name, "peek": peek, "peek_seconds": PEEK_VISIBILITY_MS // 1000}
    return render(request, "ops/dead_letters.html", context, status=503 if peek.error else 200)


@staff_member_required
@require_GET
def dead_letter(request: HttpRequest, queue_name: str, dead_letter_id: str) -> HttpResponse:
    broker = _broker_with(queue_name)
    context: dict[str, Any] = {"queue_name": queue_name, "dead_letter_id": dead_letter_id}
    try:
        letter = broker.dead_letters.get(broker.queue(queue_name), dead_letter_id)
    except _BROKER_ERRORS as e:
        context["error"] = describe_broker_error(e)
        return render(request, "ops/dead_letter.html", context, status=_status(e))
    context.update(
        letter=letter,
        body=_pretty(letter.body),
        options=_pretty(json.dumps(letter.message.options)) if letter.message else "",
        traceback=letter.message.options.get("traceback", "") if letter.message else "",
    )
    return render(request, "ops/dead_letter.html", context)


@staff_member_required
@require_POST
def dead_letter_retry(request: HttpRequest, queue_name: str, dead_letter_id: str) -> HttpResponse:
    broker = _broker_with(queue_name)
    try:
        letter = broker.dead_letters.retry(broker.queue(queue_name), dead_letter_id)
    except _BROKER_ERRORS as e:
        messages.error(request, describe_broker_error(e))
        return redirect("ops:dead_letters", queue_name=queue_name)
    messages.success(
        request, f"Sent the {letter.actor or 'unnamed'} message back to {queue_name} to be tried again."
    )
    return redirect("ops:dead_letters", queue_name=queue_name)


@staff_member_required
@require_POST
def dead_letter_delete(request: HttpRequest, queue_name: str, dead_letter_id: str) -> HttpResponse:
    broker = _broker_with(queue_name)
    try:
        letter = broker.dead_letters.delete(broker.queue(queue_name), dead_letter_id)
    except _BROKER_ERRORS as e:
        messages.error(request, describe_broker_error(e))
        return redirect("ops:dead_letters", queue_name=queue_name)
    messages.success(request, f"Deleted the {letter.actor or 'unnamed'} dead letter; it will not run.")
    return redirect("ops:dead_letters", queue_name=queue_name)


def _broker_with(queue_name: str) -> Any:
    broker = dramatiq.get_broker()
    if queue_name not in broker.get_declared_queues():
        raise Http404("No such queue.")
    return broker


def _status(error: BaseException) -> int:
    return 404 if isinstance(error, DeadLetterNotFound) else 503


def _pretty(body: str) -> str:
    try:
        return json.dumps(json.loads(body), indent=2, ensure_ascii=False)
    except ValueError:
        return body


@staff_member_required
@require_POST
def outbox_set_aside(request: HttpRequest, row_id: int) -> HttpResponse:
    """Send a set-aside outbox message again, or discard it."""
    if request.POST.get("action") == "discard":
        if not outbox_set_aside_discard(row_id=row_id):
            raise Http404("No such set-aside message.")
        messages.success(request, "Discarded the set-aside message; it will not be sent.")
    else:
        if not outbox_set_aside_retry(row_id=row_id):
            raise Http404("No such set-aside message.")
        messages.success(request, "The set-aside message is back in line; the relay sends it shortly.")
    return redirect("ops:index")
