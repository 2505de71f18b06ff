"""Request metrics of the web process: how many requests each view answered, with what, how fast.

    offload_http_requests_total{method,view,status}
    offload_http_request_duration_seconds{method,view}   (a histogram)

Labels stay few whatever visitors send: `view` is the URL pattern's name (`images:list`), never the
path, and a method outside HTTP's usual ones counts as `other`.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core.exceptions import MiddlewareNotUsed
from django.http import HttpRequest, HttpResponse

#: The `view` of a request no URL pattern matched (a 404 before any view ran).
UNRESOLVED = "(unresolved)"
#: The `view` of a URL pattern that has no name.
UNNAMED = "(unnamed)"
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


@functools.cache
def _metrics() -> tuple[Any, Any]:
    from prometheus_client import Counter, Histogram

    requests = Counter(
        "offload_http_requests",
        "HTTP requests answered, by method, view (URL pattern name) and status.",
        ["method", "view", "status"],
    )
    duration = Histogram(
        "offload_http_request_duration_seconds",
        "Time from the request reaching Django's middleware to the response leaving it.",
        ["method", "view"],
    )
    return requests, duration


class RequestMetrics:
    """Counts and times every request; installed only while METRICS_TOKEN is set.

    First in MIDDLEWARE, so redirects and refusals of the other middleware count too.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        if not settings.METRICS_TOKEN:
            raise MiddlewareNotUsed
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        response = self.get_response(request)
        elapsed = time.perf_counter() - started
        method = request.method if request.method in _METHODS else "other"
        view = _view_name(request)
        requests, duration = _metrics()
        requests.labels(method=method, view=view, status=str(response.status_code)).inc()
        duration.labels(method=method, view=view).observe(elapsed)
        return response


def _view_name(request: HttpRequest) -> str:
    match = getattr(request, "resolver_match", None)
    if match is None:
        return UNRESOLVED
    return match.view_name or UNNAMED
