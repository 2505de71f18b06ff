from __future__ import annotations

import dramatiq
from django.contrib import messages
from django.contrib.admin.views.decorators import staff_member_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from web.core.outbox import outbox_set_aside_discard, outbox_set_aside_retry
from web.ops import selectors, services
from web.ops.models import TaskRun


@staff_member_required
@require_GET
def index(request: HttpRequest) -> HttpResponse:
    status = request.GET.get("status") or None
    return render(
        request,
        "ops/index.html",
        {
            "queues": selectors.queue_counts(broker=dramatiq.get_broker()),
            "outbox_waiting": selectors.outbox_waiting(),
            "outbox_set_aside": selectors.outbox_set_aside(),
            "runs": selectors.task_run_recent(status=status),
            "statuses": TaskRun.Status.choices,
            "status": status,
        },
    )


@staff_member_required
@require_GET
def queues(request: HttpRequest) -> HttpResponse:
    """The counts fragment the page polls (htmx)."""
    context = {
        "queues": selectors.queue_counts(broker=dramatiq.get_broker()),
        "outbox_waiting": selectors.outbox_waiting(),
        "outbox_set_aside": selectors.outbox_set_aside(),
    }
    return render(request, "ops/_queues.html", context)


@staff_member_required
@require_POST
def redrive(request: HttpRequest, queue_name: str) -> HttpResponse:
    limit = 1 if request.POST.get("how_many") == "one" else None
    try:
        moved = services.dead_letters_redrive(
            broker=dramatiq.get_broker(), queue_name=queue_name, limit=limit
        )
    except ValueError:
        raise Http404("No such queue.") from None
    messages.success(request, f"Sent {moved} dead letter(s) of {queue_name} back to be tried again.")
    return redirect("ops:index")


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
