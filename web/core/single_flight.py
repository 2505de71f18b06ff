"""Single flight: one run at a time of a job people ask for, decided by the database.

A report regeneration, a user's export: two clicks, or a click racing the schedule, must start one
run, and whoever asks again is shown the run in flight. A model gets the fields for that from
SingleFlightRun and the database's guarantee from one_in_flight(); the functions below start a run
(or return the one in flight), claim it in the worker, and give up runs no worker will finish.

    class Export(SingleFlightRun):
        owner = models.ForeignKey(...)

        class Meta:
            constraints = [one_in_flight("owner", name="one_export_in_flight_per_owner")]

    export, created = run_start(
        Export.objects.filter(owner=owner),
        create=lambda: Export.objects.create(owner=owner, created_at=timezone.now()),
        stale=Q(updated_at__lt=cutoff),
        abandoned="The worker stopped while writing this export. Start a new one.",
        started=lambda export: enqueue_on_commit(export_csv, export_id=export.pk),
    )
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, ClassVar

from django.db import IntegrityError, models, transaction
from django.db.models import F, Q, QuerySet
from django.utils import timezone

logger = logging.getLogger(__name__)

#: Attempts at starting a run when the run that blocked it keeps finishing in between.
START_ATTEMPTS = 3


class RunStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"


#: The states in which a run holds its single-flight slot.
IN_FLIGHT = (RunStatus.QUEUED, RunStatus.RUNNING)
#: The states a worker may claim: queued, and failed for the actor's retries and redriven dead letters.
CLAIMABLE = (RunStatus.QUEUED, RunStatus.FAILED)


class SingleFlightRun(models.Model):
    """The fields every single-flight run shares: where it is, when it ran, how often, what went wrong."""

    Status = RunStatus
    IN_FLIGHT: ClassVar[tuple[RunStatus, ...]] = IN_FLIGHT

    status = models.CharField(max_length=10, choices=RunStatus, default=RunStatus.QUEUED)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    error = models.TextField(blank=True)

    class Meta:
        abstract = True

    @property
    def in_flight(self) -> bool:
        return self.status in IN_FLIGHT


def one_in_flight(*fields: str, name: str) -> models.UniqueConstraint:
    """The partial unique constraint that lets the database, not the view, keep one run in flight per
    value of `fields`: two requests racing each other cannot both insert one."""
    return models.UniqueConstraint(
        fields=list(fields), condition=Q(status__in=[s.value for s in IN_FLIGHT]), name=name
    )


def run_start[R: SingleFlightRun](
    runs: QuerySet[R],
    *,
    create: Callable[[], R],
    stale: Q,
    abandoned: str,
    started: Callable[[R], object],
) -> tuple[R, bool]:
    """Start a run among `runs` unless one is in flight; returns the run in flight now and whether it
    is new.

    In one transaction: runs in flight that match `stale` are given up first (failed with the
    message `abandoned`), then `create()` inserts the new run, and `started(run)` (which enqueues
    its work on commit) is called only when the insert won.
    """
    for _ in range(START_ATTEMPTS):
        with transaction.atomic():
            runs_abandon(runs, stale=stale, error=abandoned)
            try:
                with transaction.atomic():
                    run = create()
            except IntegrityError:
                running = runs.filter(status__in=IN_FLIGHT).first()
                if running is not None:
                    return running, False
                continue  # the run that blocked us finished in between: try again
            started(run)
            return run, True
    raise RuntimeError(f"Could not start a {runs.model._meta.verbose_name}: the slot kept changing hands.")


def run_claim[R: SingleFlightRun](runs: QuerySet[R], *, run_id: int, **changes: Any) -> R | None:
    """Mark a queued (or failed) run running for the worker that is about to do it, and return it.

    None when it is running or done already: a second delivery of the same message then does
    nothing. `changes` are further fields to set with the claim.
    """
    # A failed run can be claimed again so that the actor's retries (and a dead letter redriven from
    # /ops/) work; a running or done one cannot, which is what makes a second delivery a no-op.
    try:
        with transaction.atomic():
            claimed = runs.filter(pk=run_id, status__in=CLAIMABLE).update(
                status=RunStatus.RUNNING,
                started_at=timezone.now(),
                attempts=F("attempts") + 1,
                error="",
                **changes,
            )
    except IntegrityError:
        claimed = 0  # a retry of a failed run, but a newer run is in flight now
    if not claimed:
        logger.info("%s %r is taken or finished already; nothing to do.", _name(runs), run_id)
        return None
    return runs.get(pk=run_id)


def run_fail(runs: QuerySet[Any], *, run_id: int, error: BaseException, **changes: Any) -> None:
    """Record that a run failed with `error`; the actor's retries may claim it again."""
    runs.filter(pk=run_id).update(
        status=RunStatus.FAILED,
        finished_at=timezone.now(),
        error=f"{type(error).__name__}: {error}"[:2000],
        **changes,
    )


def runs_abandon(runs: QuerySet[Any], *, stale: Q, error: str) -> int:
    """Fail the runs in flight that match `stale`, saying `error`; returns how many."""
    count = runs.filter(stale, status__in=IN_FLIGHT).update(
        status=RunStatus.FAILED, finished_at=timezone.now(), error=error
    )
    if count:
        logger.warning("Gave up %d %s(s) that no worker finished.", count, _name(runs))
    return count


def _name(runs: QuerySet[Any]) -> str:
    return str(runs.model._meta.verbose_name)
