"""Worker metrics: Dramatiq's standard metrics for every message, served on the worker's own port.

Each worker process counts in the run's multiprocess directory, under the names and labels of
Dramatiq's own Prometheus middleware (so dashboards made for it work unchanged):

    dramatiq_messages_total, dramatiq_message_errors_total, dramatiq_message_retries_total,
    dramatiq_message_rejects_total, dramatiq_messages_inprogress, dramatiq_delayed_messages_inprogress,
    dramatiq_message_duration_milliseconds                      {queue_name, actor_name}

and copies its broker's SQS request counts (offload_sqs_requests_total) there every second. One more
process, started by dramatiq's main process beside the workers (a dramatiq "fork"), answers
`GET /metrics` on METRICS_WORKER_HOST:METRICS_WORKER_PORT (9191, Dramatiq's usual port) with the sum
of every process, plus the queue depths and the outbox backlog read when scraped (web.metrics.gauges).
Like the web's /metrics, it answers only `Authorization: Bearer <METRICS_TOKEN>`; without the
setting nothing here runs. Dramatiq's own middleware is not used: it takes its directory and port
from variables of its own, read at import, and never clears the directory between runs.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

from django.conf import settings
from dramatiq import Broker, Middleware

from web.metrics.exposition import authorized, counting_in_files, render, use_run_directory
from web.metrics.sqs_requests import copy_sqs_requests

logger = logging.getLogger(__name__)

#: How often a worker process copies its broker's SQS request counts to the shared files.
SQS_COPY_INTERVAL_S = 1.0
#: Dramatiq's duration buckets, in milliseconds, kept so that its dashboards read ours.
DURATION_BUCKETS_MS = (
    5, 10, 25, 50, 75, 100, 250, 500, 750, 1_000, 2_500, 5_000, 7_500, 10_000, 30_000, 60_000,
    600_000, 900_000, float("inf"),
)  # fmt: skip
#: A scrape that has not sent its request line within this many seconds is dropped.
REQUEST_TIMEOUT_S = 10


class _DramatiqMetrics:
    """Dramatiq's metric names; made only after the process chose its multiprocess directory."""

    def __init__(self) -> None:
        from prometheus_client import Counter, Gauge, Histogram

        labels = ["queue_name", "actor_name"]
        self.messages = Counter("dramatiq_messages", "The total number of messages processed.", labels)
        self.errors = Counter("dramatiq_message_errors", "The total number of errored messages.", labels)
        self.retries = Counter("dramatiq_message_retries", "The total number of retried messages.", labels)
        self.rejects = Counter(
            "dramatiq_message_rejects", "The total number of dead-lettered messages.", labels
        )
        self.in_progress = Gauge(
            "dramatiq_messages_inprogress",
            "The number of messages in progress.",
            labels,
            multiprocess_mode="livesum",
        )
        self.delayed = Gauge(
            "dramatiq_delayed_messages_inprogress",
            "The number of delayed messages in memory.",
            labels,
            multiprocess_mode="livesum",
        )
        self.duration = Histogram(
            "dramatiq_message_duration_milliseconds",
            "The time spent processing messages.",
            labels,
            buckets=DURATION_BUCKETS_MS,
        )


class WorkerMetrics(Middleware):
    """Counts each worker process's messages and serves the metrics of all of them (see the module)."""

    def __init__(self) -> None:
        self.enabled = bool(settings.METRICS_TOKEN)
        self._metrics: _DramatiqMetrics | None = None
        self._started: dict[str, float] = {}
        self._delayed: set[str] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._copier: threading.Thread | None = None

    @property
    def forks(self) -> list[Any]:
        return [serve_worker_metrics] if self.enabled else []

    # --- the process ---------------------------------------------------------------------------
    def after_process_boot(self, broker: Broker) -> None:
        if not self.enabled:
            return
        # Every worker process is a child of dramatiq's main process: the run's directory is named after it.
        use_run_directory(settings.METRICS_DIR, kind="worker", owner=os.getppid())
        if not counting_in_files():
            logger.error(
                "Metrics: prometheus_client was imported before the metrics directory was set; "
                "this worker process's counts cannot be scraped."
            )
        self._metrics = _DramatiqMetrics()

    def after_worker_boot(self, broker: Broker, worker: Any) -> None:
        if self._metrics is None:
            return
        self._stop.clear()
        self._copier = threading.Thread(
            target=self._copy_sqs_requests, args=(broker,), name="metrics-sqs-requests", daemon=True
        )
        self._copier.start()

    def after_worker_shutdown(self, broker: Broker, worker: Any) -> None:
        if self._metrics is None:
            return
        self._stop.set()
        if self._copier is not None:
            self._copier.join(timeout=5)
        copy_sqs_requests(broker)
        from prometheus_client import multiprocess

        directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
        if directory:
            multiprocess.mark_process_dead(os.getpid(), directory)

    def _copy_sqs_requests(self, broker: Broker) -> None:
        while not self._stop.wait(SQS_COPY_INTERVAL_S):
            try:
                copy_sqs_requests(broker)
            except Exception:
                logger.warning("Metrics: could not copy the SQS request counts.", exc_info=True)

    # --- the messages --------------------------------------------------------------------------
    def before_delay_message(self, broker: Broker, message: Any) -> None:
        if self._metrics is None:
            return
        with self._lock:
            self._delayed.add(message.message_id)
        self._metrics.delayed.labels(message.queue_name, message.actor_name).inc()

    def before_process_message(self, broker: Broker, message: Any) -> None:
        if self._metrics is None:
            return
        labels = (message.queue_name, message.actor_name)
        with self._lock:
            was_delayed = message.message_id in self._delayed
            self._delayed.discard(message.message_id)
            self._started[message.message_id] = time.monotonic()
        if was_delayed:
            self._metrics.delayed.labels(*labels).dec()
        self._metrics.in_progress.labels(*labels).inc()

    def after_process_message(
        self, broker: Broker, message: Any, *, result: Any = None, exception: BaseException | None = None
    ) -> None:
        if self._metrics is None:
            return
        labels = (message.queue_name, message.actor_name)
        with self._lock:
            started = self._started.pop(message.message_id, None)
        if started is not None:
            self._metrics.duration.labels(*labels).observe((time.monotonic() - started) * 1000)
            self._metrics.in_progress.labels(*labels).dec()
        self._metrics.messages.labels(*labels).inc()
        if exception is not None:
            self._metrics.errors.labels(*labels).inc()

    after_skip_message = after_process_message

    def after_nack(self, broker: Broker, message: Any) -> None:
        if self._metrics is not None:
            self._metrics.rejects.labels(message.queue_name, message.actor_name).inc()

    def after_enqueue(self, broker: Broker, message: Any, delay: int | None) -> None:
        # The Retries middleware enqueues a retry with its count in the options; first sends have none.
        if self._metrics is not None and "retries" in message.options:
            self._metrics.retries.labels(message.queue_name, message.actor_name).inc()


# --- the exposition process -------------------------------------------------------------------
class _MetricsHandler(BaseHTTPRequestHandler):
    timeout = REQUEST_TIMEOUT_S
    server_version = "offload-worker-metrics"
    sys_version = ""

    def do_GET(self) -> None:
        from django.db import close_old_connections

        from web.metrics.gauges import waiting_work

        if self.path.split("?", 1)[0] != "/metrics" or not authorized(
            self.headers.get("Authorization"), settings.METRICS_TOKEN
        ):
            self._answer(404, b"Not Found\n", "text/plain; charset=utf-8")
            return
        try:
            import dramatiq

            copy_sqs_requests(dramatiq.get_broker())  # this process's own reads of the queue depths
            body, content_type = render([waiting_work()])
        except Exception:
            logger.exception("Metrics: the scrape failed.")
            self._answer(500, b"The metrics could not be read; see the worker's log.\n", "text/plain")
            return
        finally:
            close_old_connections()
        self._answer(200, body, content_type)

    do_HEAD = do_GET  # the same answer without its body (_answer leaves it out)

    def _refuse(self) -> None:
        """Any other method: a stranger's 404, as for GET; on /metrics the token holder's 405 (as the
        web's /metrics answers)."""
        if self.path.split("?", 1)[0] == "/metrics" and authorized(
            self.headers.get("Authorization"), settings.METRICS_TOKEN
        ):
            self._answer(405, b"Method Not Allowed\n", "text/plain; charset=utf-8", allow="GET, HEAD")
        else:
            self._answer(404, b"Not Found\n", "text/plain; charset=utf-8")

    do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = _refuse

    def _answer(self, status: int, body: bytes, content_type: str, allow: str = "") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        if allow:
            self.send_header("Allow", allow)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug(format, *args)


def serve_worker_metrics() -> int:
    """The fork that serves /metrics for every worker process of this dramatiq run."""
    import django

    # dramatiq's main process, this one's parent, never loaded Django.
    django.setup()
    use_run_directory(settings.METRICS_DIR, kind="worker", owner=os.getppid())
    address = (settings.METRICS_WORKER_HOST, settings.METRICS_WORKER_PORT)
    try:
        server = HTTPServer(address, _MetricsHandler)
    except OSError as e:
        logger.error("Metrics: cannot serve worker metrics on %s:%d: %s", *address, e)
        return 1
    logger.info("Serving worker metrics on http://%s:%d/metrics.", *server.server_address[:2])
    with server:
        server.serve_forever()
    return 0
