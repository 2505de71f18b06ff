"""Django middleware of the core app."""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse

from web.core.enqueue import collect_batch


class EnqueueBatchMiddleware:
    """Sends all the messages a request enqueued (and committed) in one SendMessageBatch at its end.

    The request waits at most OUTBOX_SEND_WAIT_MS for SQS; a slower send goes on after the response,
    its messages safe in the outbox meanwhile.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        with collect_batch(wait_ms=settings.OUTBOX_SEND_WAIT_MS):
            return self.get_response(request)
