"""The outbox relay's thread: a Dramatiq middleware that runs outbox.outbox_relay in every worker.

Dramatiq middleware is built while Django's apps are still loading (django_dramatiq's app config),
before models can be imported, so this module imports the outbox only when the thread runs.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from django.conf import settings
from django.db import close_old_connections
from dramatiq import Broker, Middleware

logger = logging.getLogger(__name__)


class OutboxRelay(Middleware):
    """Runs the outbox relay in a thread of each worker process, every OUTBOX_RELAY_INTERVAL_MS."""

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def after_worker_boot(self, broker: Broker, worker: Any) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, args=(broker,), name="outbox-relay", daemon=True)
        self._thread.start()

    def before_worker_shutdown(self, broker: Broker, worker: Any) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def _run(self, broker: Broker) -> None:
        while not self._stop.wait(settings.OUTBOX_RELAY_INTERVAL_MS / 1000):
            try:
                from web.core.outbox import RELAY_BATCH, outbox_relay

                while outbox_relay(broker=broker) == RELAY_BATCH and not self._stop.is_set():
                    pass  # a full pass: there may be more
            except Exception:
                logger.warning("The outbox relay pass failed; it runs again shortly.", exc_info=True)
            finally:
                close_old_connections()
