"""The scheduler process: an APScheduler BlockingScheduler that enqueues only while it leads.

Every process renews (or tries to take) the database lease every `renew_ms`. The one holding it
adds the schedule's jobs to its APScheduler; the others keep only the lease job and wait. When the
leader dies its lease expires within `lease_ms`, and the next attempt by another process takes it:
a takeover needs at most about lease_ms + renew_ms.

On taking the lead a process catches up: each job's latest slot still inside its misfire grace is
run if no one ran it (the dead leader's last slot, say), and a job with `catch_up_after` whose last
run is older than that runs at once. Every run goes through the (job, slot) claim, so none of this
can enqueue a slot twice.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import partial
from types import FrameType

from apscheduler.events import EVENT_SCHEDULER_STARTED
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers import SchedulerNotRunningError
from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.interval import IntervalTrigger
from django.db import DatabaseError, close_old_connections
from dramatiq import Broker

from scheduler.jobs import Job
from scheduler.selectors import scheduled_run_last_slot
from scheduler.services import LEASE_NAME, lease_acquire, lease_release, scheduled_run_enqueue

logger = logging.getLogger(__name__)

#: Threads running jobs: enqueueing is quick, but the lease must never wait behind a slow send.
EXECUTOR_THREADS = 4
_LEASE_JOB_ID = "scheduler-lease"


def new_holder_id() -> str:
    """Names this process in the lease and run records: host, pid and a random part for pid reuse."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class SchedulerProcess:
    """Runs the schedule in this process while it holds the lease; see the module docstring."""

    def __init__(
        self,
        *,
        jobs: tuple[Job, ...],
        broker: Broker,
        lease_ms: int,
        renew_ms: int,
        holder: str | None = None,
        lease_name: str = LEASE_NAME,
    ) -> None:
        if not 0 < renew_ms < lease_ms:
            raise ValueError("The lease must be renewed more often than it lasts (0 < renew_ms < lease_ms).")
        self.jobs = jobs
        self.broker = broker
        self.lease_ms = lease_ms
        self.renew_ms = renew_ms
        self.holder = holder or new_holder_id()
        self.lease_name = lease_name
        self._leading = False
        # Judged on this process's monotonic clock from the start of the last successful renewal,
        # so a renewal that stalls (a locked or unreachable database) stops the enqueueing in time.
        self._lease_valid_until = 0.0
        self._lock = threading.RLock()
        self._waiting_announced = False
        self._stopping = False
        self._stop_requested = threading.Event()
        self._started = threading.Event()
        self._stopped = threading.Event()
        self._scheduler = BlockingScheduler(
            timezone=UTC,
            executors={"default": ThreadPoolExecutor(EXECUTOR_THREADS)},
            job_defaults={"coalesce": True, "max_instances": 1},
        )
        self._scheduler.add_listener(lambda event: self._started.set(), EVENT_SCHEDULER_STARTED)

    # --- running ---------------------------------------------------------------------------------
    def run(self) -> None:
        """Block until stop() (or SIGTERM/SIGINT, see install_signal_handlers); then give up the lease."""
        self._scheduler.add_job(
            self._keep_lease,
            IntervalTrigger(seconds=self.renew_ms / 1000, timezone=UTC),
            id=_LEASE_JOB_ID,
            name="lease",
            next_run_time=datetime.now(UTC),
            misfire_grace_time=None,
        )
        if self._stop_requested.is_set():
            self._started.set()
            return
        logger.info(
            "Scheduler %r started: lease %d ms, renewed every %d ms.",
            self.holder,
            self.lease_ms,
            self.renew_ms,
        )
        self._scheduler.start()
        # start() returns as soon as the scheduler is marked stopped; wait for its running jobs too,
        # or a lease renewal still in flight could take the lease back after it was given up.
        self._stopped.wait()
        self._release()
        logger.info("Scheduler %r stopped.", self.holder)

    def stop(self) -> None:
        """Stop scheduling and let running jobs finish; safe to call twice and from a signal handler."""
        if self._stop_requested.is_set():
            return
        self._stop_requested.set()
        # Not in the caller's thread: a signal handler interrupts the main thread, possibly while it
        # holds APScheduler's job store lock, which a running job may be waiting for.
        threading.Thread(target=self._shut_down, name="scheduler-stop", daemon=True).start()

    def _shut_down(self) -> None:
        # A stop that comes while run() is still starting the scheduler waits for it to have started.
        self._started.wait()
        # APScheduler's shutdown holds its job store lock while it waits for running jobs, so no job
        # may add or remove jobs from then on: the lease job checks this flag under the same lock.
        with self._lock:
            self._stopping = True
        try:
            self._scheduler.shutdown(wait=True)
        except SchedulerNotRunningError:
            pass
        finally:
            self._stopped.set()

    def install_signal_handlers(self) -> None:
        def handle(signum: int, frame: FrameType | None) -> None:
            logger.info("Received %s: stopping the scheduler.", signal.Signals(signum).name)
            self.stop()

        signal.signal(signal.SIGTERM, handle)
        signal.signal(signal.SIGINT, handle)

    @property
    def leading(self) -> bool:
        with self._lock:
            return self._leading and time.monotonic() < self._lease_valid_until

    # --- the lease -------------------------------------------------------------------------------
    def _keep_lease(self) -> None:
        started = time.monotonic()
        try:
            held: bool | None = _with_fresh_connection(
                lambda: lease_acquire(holder=self.holder, ttl_ms=self.lease_ms, name=self.lease_name)
            )
        except DatabaseError:
            logger.warning("Could not renew the scheduler lease.", exc_info=True)
            held = None
        with self._lock:
            if self._stopping:
                return
            if held:
                self._lease_valid_until = started + self.lease_ms / 1000
                if not self._leading:
                    self._lead()
            elif self._leading and (held is False or time.monotonic() >= self._lease_valid_until):
                self._follow()
            elif held is False and not self._waiting_announced:
                self._waiting_announced = True
                logger.info("Scheduler %r is waiting: another scheduler holds the lease.", self.holder)

    def _lead(self) -> None:
        logger.info("Scheduler %r now leads: enqueueing %d jobs.", self.holder, len(self.jobs))
        self._leading = True
        for job in self.jobs:
            self._scheduler.add_job(
                self._run_due,
                job.trigger,
                args=[job],
                id=job.name,
                name=job.name,
                misfire_grace_time=max(1, round(job.misfire_grace.total_seconds())),
                replace_existing=True,
            )
        # In a job of its own: sending can take a while (the first send may create the queue), and
        # the lease job must stay free to renew.
        self._scheduler.add_job(
            self._catch_up, id="scheduler-catch-up", name="catch up", replace_existing=True
        )

    def _follow(self) -> None:
        logger.warning("Scheduler %r lost the lease: no longer enqueueing.", self.holder)
        self._leading = False
        self._waiting_announced = False
        for job in self.jobs:
            self._scheduler.remove_job(job.name)

    def _release(self) -> None:
        with self._lock:
            self._leading = False
        try:
            if _with_fresh_connection(lambda: lease_release(holder=self.holder, name=self.lease_name)):
                logger.info("Scheduler %r gave up the lease.", self.holder)
        except DatabaseError:
            logger.warning("Could not give up the lease; it expires by itself.", exc_info=True)

    # --- the jobs --------------------------------------------------------------------------------
    def _catch_up(self) -> None:
        if not self.leading:
            return
        now = datetime.now(UTC)
        for job in self.jobs:
            last = _with_fresh_connection(partial(scheduled_run_last_slot, job_name=job.name))
            slot = job.due_slot(now, last_slot=last)
            if slot is not None:
                self._enqueue(job, slot)
        logger.info("Scheduler %r caught up.", self.holder)

    def _run_due(self, job: Job) -> None:
        # APScheduler does not tell a job which slot it is running for: it is the latest one, since
        # APScheduler only runs a job once its slot has come, and coalesces the missed ones.
        slot = job.latest_slot(datetime.now(UTC), within=job.misfire_grace + timedelta(seconds=1))
        if slot is None:
            logger.warning("Job %r ran too late for any slot; skipped.", job.name)
            return
        if not self.leading:
            logger.info(
                "Job %r for slot %s skipped: this scheduler no longer leads.", job.name, slot.isoformat()
            )
            return
        self._enqueue(job, slot)

    def _enqueue(self, job: Job, slot: datetime) -> None:
        try:
            _with_fresh_connection(
                lambda: scheduled_run_enqueue(job=job, slot=slot, holder=self.holder, broker=self.broker)
            )
        except DatabaseError:
            logger.exception("Job %r for slot %s: the database failed.", job.name, slot.isoformat())


def _with_fresh_connection[T](call: Callable[[], T]) -> T:
    # Each APScheduler thread keeps its own connection between runs: drop a broken or expired one
    # first (CONN_MAX_AGE), and close it after, as Django does around each request.
    close_old_connections()
    try:
        return call()
    finally:
        close_old_connections()
