"""GET /metrics: the web's metrics for Prometheus, behind a bearer token."""

from __future__ import annotations

import dramatiq
from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseNotAllowed
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt

from web.metrics.exposition import authorized, render
from web.metrics.gauges import waiting_work
from web.metrics.sqs_requests import copy_sqs_requests


# Exempt from CSRF, which would refuse a stranger's POST with a 403 that gives the page away; it
# changes nothing, so a forged request gains nothing.
@csrf_exempt
@never_cache
def metrics(request: HttpRequest) -> HttpResponse:
    """The exposition text, for a request with `Authorization: Bearer <METRICS_TOKEN>` only.

    Anyone else, and everyone while METRICS_TOKEN is unset, gets the site's ordinary 404: the page
    does not tell a stranger that it exists.
    """
    if not authorized(request.headers.get("Authorization"), settings.METRICS_TOKEN):
        raise Http404
    if request.method not in ("GET", "HEAD"):
        return HttpResponseNotAllowed(["GET", "HEAD"])
    copy_sqs_requests(dramatiq.get_broker())
    body, content_type = render([waiting_work()])
    return HttpResponse(body, content_type=content_type)
