"""AWS Lambda entry points, named by deploy/template.yaml.

    web_handler        the site behind an HTTP API (v2), a REST API (v1), an ALB or a function URL
    worker_handler     the SQS event source: the actors of each batch, answering which records failed
    scheduler_handler  EventBridge Scheduler, every minute: the due jobs, then the outbox relay

Whatever can be made once per container is made here, at import, in Lambda's init phase: Django's
setup, the broker and its SQS client, the WSGI application and its middleware. An invocation only runs.

Lambda freezes the container the moment a handler returns, background threads included. A request's
messages are sent by a thread that the request waits for only up to OUTBOX_SEND_WAIT_MS; here the
handler waits for that send to finish before it answers, so a request's messages are in SQS (or, when
SQS refused them, in the outbox for the relay) by the time the response leaves.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "web.settings")
django.setup()

import dramatiq  # noqa: E402
from apig_wsgi import make_lambda_handler  # noqa: E402
from django.conf import settings  # noqa: E402
from django.core.files.storage import storages  # noqa: E402
from django.core.wsgi import get_wsgi_application  # noqa: E402
from django.db import close_old_connections  # noqa: E402

from brokers import SQSEventHandler  # noqa: E402
from scheduler.jobs import schedule  # noqa: E402
from scheduler.tick import schedule_tick  # noqa: E402

# The site's enqueue and outbox services, imported in this one place so that a rename of either
# module is a one-line change.
from web.core.enqueue import wait_for_background_sends  # noqa: E402
from web.core.outbox import RELAY_BATCH, outbox_relay  # noqa: E402

logger = logging.getLogger(__name__)

#: Lambda refuses a synchronous response larger than this, JSON envelope and base64 included
#: (gettingstarted-limits: "6 MB each for request and response").
MAX_RESPONSE_BYTES = 6 * 1024 * 1024
#: Time kept back from the invocation's deadline, in milliseconds, so a handler still answers.
DEADLINE_MARGIN_MS = 1_000
#: How long a handler may take when the context tells no deadline (a local call), in milliseconds.
DEFAULT_BUDGET_MS = 30_000

_application = get_wsgi_application()
# Binary responses (images, downloads, compressed static files) go back base64-encoded for every
# event kind; text/* and JSON stay text. A REST API needs binaryMediaTypes "*/*" to pass them on.
_adapter = make_lambda_handler(_application, binary_support=True)


def _make_clients() -> None:
    # Django's setup made the broker and its SQS client. Storages make their clients (S3's boto3
    # resource) on first use; make them now, in the init phase, rather than in the first request.
    dramatiq.get_broker()
    for alias in settings.STORAGES:
        getattr(storages[alias], "connection", None)


_make_clients()


@contextmanager
def _as_a_request() -> Iterator[None]:
    # Django refreshes database connections around each request; a record is handled the same way,
    # so a connection that died or aged past CONN_MAX_AGE while the container was frozen is replaced.
    close_old_connections()
    try:
        yield
    finally:
        close_old_connections()


_worker = SQSEventHandler(dramatiq.get_broker(), around_record=_as_a_request)


def web_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Answer one HTTP request, from any of the event kinds in the module docstring."""
    _check_http_event(event)
    response = _adapter(event, context)
    if not wait_for_background_sends(timeout_ms=_budget_ms(context)):
        logger.warning("SQS did not take a request's messages in time; the outbox relay will send them.")
    size = len(json.dumps(response))
    if size > MAX_RESPONSE_BYTES:
        logger.error(
            "A %s response to %s is %d bytes as a Lambda response; Lambda allows %d.",
            response.get("statusCode"),
            _path(event),
            size,
            MAX_RESPONSE_BYTES,
        )
        return _too_large(event, size)
    return response


def worker_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Run the actors of an SQS event's records; answer which records failed, for Lambda to keep.

    See brokers.sqs_events for what is reported. An event that is not an SQS event raises
    NotAnSQSEvent (a ValueError) saying what it is.
    """
    global _worker
    broker = dramatiq.get_broker()
    if _worker.broker is not broker:  # the broker was replaced after import (tests bind their own)
        _worker = SQSEventHandler(broker, around_record=_as_a_request)
    return _worker(event, context)


def scheduler_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Enqueue the jobs due at the invocation's scheduled time, then relay the unsent outbox rows.

    Called twice for one minute (a retry, a manual invoke), it enqueues each slot once. Returns
    what it did, which Lambda's console and `sam remote invoke` show.
    """
    now = scheduled_time(event)
    broker = dramatiq.get_broker()
    holder = f"lambda:{getattr(context, 'function_name', 'local')}:{getattr(context, 'aws_request_id', '')}"
    close_old_connections()
    try:
        runs = schedule_tick(jobs=schedule(), now=now, holder=holder, broker=broker)
        relayed = _relay(broker, context)
    finally:
        close_old_connections()
    return {
        "scheduled_time": now.isoformat(),
        "enqueued": [{"job": run.job, "slot": run.slot.isoformat(), "status": run.status} for run in runs],
        "relayed": relayed,
    }


def scheduled_time(event: dict[str, Any]) -> datetime:
    """The minute an invocation is for: the schedule's own time, so a retry acts as the first call did.

    EventBridge Scheduler passes it as "scheduledTime" (the template's Input names the context
    attribute <aws.scheduler.scheduled-time>); an EventBridge rule sends "time". With neither (a
    manual invoke with an empty event) it is now.
    """
    if not isinstance(event, dict):
        raise ValueError(f"The scheduler event must be a JSON object, not {type(event).__name__}.")
    raw = event.get("scheduledTime", event.get("time"))
    if raw is None:
        return datetime.now(UTC)
    try:
        when = datetime.fromisoformat(raw) if isinstance(raw, str) else None
    except ValueError:
        when = None
    if when is None or when.tzinfo is None:
        raise ValueError(
            f"The scheduler event's time must be an ISO 8601 time with its zone, such as "
            f"2022-03-22T18:59:43Z, not {raw!r}."
        )
    return when.astimezone(UTC)


def _relay(broker: dramatiq.Broker, context: Any) -> int:
    # There is no worker process to run the relay thread: each scheduler call drains the outbox,
    # a full pass at a time, while the invocation has time left.
    relayed = 0
    while True:
        sent = outbox_relay(broker=broker)
        relayed += sent
        if sent < RELAY_BATCH or _budget_ms(context) <= 0:
            return relayed


def _budget_ms(context: Any) -> int:
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    if remaining is None:
        return DEFAULT_BUDGET_MS
    return max(0, int(remaining()) - DEADLINE_MARGIN_MS)


def _check_http_event(event: Any) -> None:
    # A function wired to the wrong source (a schedule, a queue) would otherwise fail deep in the
    # adapter with a KeyError that names no cause.
    if isinstance(event, dict):
        context = event.get("requestContext")
        if event.get("version") == "2.0" and isinstance(context, dict) and "http" in context:
            return  # HTTP API (payload 2.0) or function URL
        if "httpMethod" in event and "path" in event:
            return  # REST API (payload 1.0) or ALB
    keys = sorted(event) if isinstance(event, dict) else type(event).__name__
    raise ValueError(
        "web_handler answers HTTP requests from API Gateway (HTTP or REST API), an ALB or a function "
        f"URL; this event is none of them (its keys: {keys})."
    )


def _path(event: dict[str, Any]) -> str:
    return str(event.get("rawPath") or event.get("path") or "?")


def _too_large(event: dict[str, Any], size: int) -> dict[str, Any]:
    text = (
        f"This response is too large to send from AWS Lambda: {size} bytes, where Lambda allows "
        f"{MAX_RESPONSE_BYTES}.\n"
    )
    headers = {"content-type": "text/plain; charset=utf-8", "cache-control": "no-store"}
    response: dict[str, Any] = {"statusCode": 502, "body": text, "isBase64Encoded": False}
    if event.get("version") == "2.0":
        response["headers"] = headers
    else:
        # A REST API or an ALB that sent multi-value headers expects them back the same way.
        key = "multiValueHeaders" if "multiValueHeaders" in event else "headers"
        response[key] = {k: [v] for k, v in headers.items()} if key == "multiValueHeaders" else headers
    return response
