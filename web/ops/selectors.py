"""What the operations page reads: queue counts and dead letters from SQS; task runs, queue-depth samples,
redrives and the outbox from the database."""

from __future__ import annotations

import logging
import math
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Count, Q, QuerySet, Sum
from dramatiq import Broker
from dramatiq.errors import ConnectionClosed

from brokers import DeadLetter, SQSBrokerError
from web.core.models import OutboxMessage
from web.ops import charts
from web.ops.aggregates import EpochSeconds, PercentileDisc
from web.ops.errors import describe_broker_error
from web.ops.models import DeadLetterRedrive, QueueDepthSample, TaskRun

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class QueueCounts:
    name: str
    visible: int | None = None
    in_flight: int | None = None
    delayed: int | None = None
    dead_letters: int | None = None
    error: str = ""


def queue_counts(*, broker: Broker) -> list[QueueCounts]:
    """Approximate counts of every declared queue; a queue SQS cannot report on carries the error."""
    counts = []
    for name in sorted(broker.get_declared_queues()):
        try:
            counts.append(QueueCounts(name, **broker.queue_counts(name)))
        except (ConnectionClosed, SQSBrokerError) as e:
            logger.warning("Could not read the counts of queue %r: %s", name, e)
            counts.append(QueueCounts(name, error=describe_broker_error(e)))
    return counts


def task_run_recent(*, limit: int = 50, status: str | None = None) -> QuerySet[TaskRun]:
    runs = TaskRun.objects.all()
    if status:
        runs = runs.filter(status=status)
    return runs[:limit]


def outbox_waiting() -> int:
    """Messages committed but not yet accepted by SQS, still in line for the relay."""
    return OutboxMessage.objects.filter(set_aside_at__isnull=True).count()


def outbox_set_aside(*, limit: int = 50) -> QuerySet[OutboxMessage]:
    """Messages the relay gave up on after SQS kept refusing them, newest first, with their reasons."""
    return OutboxMessage.objects.filter(set_aside_at__isnull=False).order_by("-set_aside_at", "-id")[:limit]


# --- actor statistics and throughput ----------------------------------------------------------------
#: The windows the actor table shows.
WINDOWS = (("hour", timedelta(hours=1)), ("day", timedelta(hours=24)))
#: The throughput chart counts finished runs in buckets this long.
THROUGHPUT_BUCKET = timedelta(minutes=15)


@dataclass(frozen=True)
class ActorStats:
    """One actor's runs in one window.

    runs: attempts made (a message tried three times counts three); failures: messages that used
    up their retries; retries: attempts after a failure. Durations are of finished runs' last attempt.
    """

    runs: int = 0
    failures: int = 0
    retries: int = 0
    p50_ms: int | None = None
    p95_ms: int | None = None


@dataclass(frozen=True)
class ActorRow:
    actor: str
    hour: ActorStats
    day: ActorStats

    @property
    def windows(self) -> tuple[ActorStats, ActorStats]:
        return self.hour, self.day


def actor_stats(*, now: datetime) -> list[ActorRow]:
    """Per actor, by name: runs, failures, retries, p50 and p95 over the last hour and the last 24 hours.

    A message's attempts all update its one record, so they count in the window of its latest start.
    """
    hour, day = (_stats_since(now - length) for _, length in WINDOWS)
    return [
        ActorRow(actor, hour=hour.get(actor, ActorStats()), day=day.get(actor, ActorStats()))
        for actor in sorted(set(hour) | set(day))
    ]


def _stats_since(since: datetime) -> dict[str, ActorStats]:
    rows = (
        TaskRun.objects.filter(started_at__gte=since)
        .exclude(status=TaskRun.Status.SKIPPED)
        .values("actor_name")
        .annotate(
            runs=Sum("attempts"),
            messages=Count("id"),
            failures=Count("id", filter=Q(status=TaskRun.Status.FAILED)),
            p50_ms=PercentileDisc("duration_ms", fraction=0.5),
            p95_ms=PercentileDisc("duration_ms", fraction=0.95),
        )
        .order_by()
    )
    return {
        row["actor_name"]: ActorStats(
            runs=row["runs"],
            failures=row["failures"],
            retries=row["runs"] - row["messages"],
            p50_ms=row["p50_ms"],
            p95_ms=row["p95_ms"],
        )
        for row in rows
    }


@dataclass(frozen=True)
class Bucket:
    start: datetime
    succeeded: int = 0
    failed: int = 0


def throughput(*, start: datetime, end: datetime, step: timedelta = THROUGHPUT_BUCKET) -> list[Bucket]:
    """Runs finished per `step` (whole seconds) from start to end: those that succeeded, those that raised."""
    failing = [TaskRun.Status.FAILED, TaskRun.Status.RETRYING]
    per_bucket = (
        # started_at is indexed; no run outlives a day (the longest time limit is an hour).
        TaskRun.objects.filter(
            started_at__gte=start - timedelta(days=1), finished_at__gte=start, finished_at__lt=end
        )
        .annotate(bucket=(EpochSeconds("finished_at") - int(start.timestamp())) / int(step.total_seconds()))
        .values("bucket")
        .annotate(failed=Count("id", filter=Q(status__in=failing)), finished=Count("id"))
        .order_by()
    )
    count = math.ceil((end - start) / step)
    succeeded, failed = [0] * count, [0] * count
    for row in per_bucket:
        i = min(count - 1, max(0, row["bucket"]))
        failed[i] += row["failed"]
        succeeded[i] += row["finished"] - row["failed"]
    return [Bucket(start + i * step, succeeded[i], failed[i]) for i in range(count)]


# --- queue depth -------------------------------------------------------------------------------------
def queue_depth_samples(*, since: datetime) -> dict[str, list[QueueDepthSample]]:
    """Every queue's depth samples since then, oldest first, by queue name."""
    samples: dict[str, list[QueueDepthSample]] = defaultdict(list)
    for sample in QueueDepthSample.objects.filter(sampled_at__gte=since).order_by("queue_name", "sampled_at"):
        samples[sample.queue_name].append(sample)
    return dict(samples)


# --- dead letters ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DeadLetterPeek:
    """Some of a queue's dead letters, or the reason SQS could not show them."""

    letters: list[DeadLetter]
    waiting: int | None = None
    error: str = ""


def dead_letters_peek(*, broker: Broker, queue_name: str) -> DeadLetterPeek:
    """Up to 100 dead letters of a declared queue (ValueError for others), oldest first, or why not."""
    if queue_name not in broker.get_declared_queues():
        raise ValueError(f"No queue named {queue_name!r}.")
    try:
        letters = broker.dead_letters.peek(broker.queue(queue_name))
        waiting = broker.queue_counts(queue_name)["dead_letters"]
    except (ConnectionClosed, SQSBrokerError) as e:
        logger.warning("Could not peek at the dead letters of queue %r: %s", queue_name, e)
        return DeadLetterPeek([], error=describe_broker_error(e))
    return DeadLetterPeek(letters, waiting=waiting)


def dead_letter_redrives_recent(*, limit: int = 10) -> QuerySet[DeadLetterRedrive]:
    """The latest "retry all" jobs, newest first."""
    return DeadLetterRedrive.objects.all()[:limit]


# --- the dashboard's charts --------------------------------------------------------------------------
#: What the charts span.
CHART_SPAN = timedelta(hours=24)
_SUCCEEDED, _FAILED = "#2557a7", "#b3261e"
_WAITING, _IN_FLIGHT, _DEAD = "#2557a7", "#e08a00", "#b3261e"


@dataclass(frozen=True)
class Chart:
    svg: str
    summary: str


@dataclass(frozen=True)
class Dashboard:
    actors: list[ActorRow]
    throughput: Chart
    depths: list[Chart]


def dashboard(*, now: datetime) -> Dashboard:
    """The actor table and the 24-hour charts, from the task runs and the queue-depth samples."""
    start = now - CHART_SPAN
    return Dashboard(
        actors=actor_stats(now=now),
        throughput=_throughput_chart(start=start, end=now),
        depths=[
            _depth_chart(name, samples, start=start, end=now)
            for name, samples in queue_depth_samples(since=start).items()
        ],
    )


def _throughput_chart(*, start: datetime, end: datetime) -> Chart:
    buckets = throughput(start=start, end=end)
    svg = charts.stacked_bars(
        title="Runs finished per 15 minutes, last 24 hours (UTC)",
        start=start,
        end=end,
        step=THROUGHPUT_BUCKET,
        stacks=[charts.Stack(b.start, (b.succeeded, b.failed)) for b in buckets],
        legend=[("succeeded", _SUCCEEDED), ("raised an error", _FAILED)],
    )
    finished = sum(b.succeeded + b.failed for b in buckets)
    if not finished:
        return Chart(svg, "No runs finished in the last 24 hours.")
    busiest = max(buckets, key=lambda b: b.succeeded + b.failed)
    failed = sum(b.failed for b in buckets)
    return Chart(
        svg,
        f"Last 24 hours: {finished:,} runs finished, {failed:,} of them raised an error. Busiest 15 minutes: "
        f"{busiest.succeeded + busiest.failed:,} runs from {busiest.start:%H:%M} UTC.",
    )


def _depth_chart(name: str, samples: list[QueueDepthSample], *, start: datetime, end: datetime) -> Chart:
    svg = charts.lines(
        title=f"Queue {name}: messages, last 24 hours (UTC)",
        start=start,
        end=end,
        series=[
            charts.Line("waiting", _WAITING, [(s.sampled_at, s.visible + s.delayed) for s in samples]),
            charts.Line("in flight", _IN_FLIGHT, [(s.sampled_at, s.in_flight) for s in samples]),
            charts.Line("dead letters", _DEAD, [(s.sampled_at, s.dead_letters) for s in samples]),
        ],
    )
    latest = samples[-1]
    most = max(samples, key=lambda s: (s.visible + s.delayed, s.sampled_at))
    return Chart(
        svg,
        f"Queue {name}, latest sample at {latest.sampled_at:%H:%M} UTC: {latest.visible + latest.delayed:,} "
        f"waiting, {latest.in_flight:,} in flight, {latest.dead_letters:,} dead letters. Most waiting: "
        f"{most.visible + most.delayed:,} at {most.sampled_at:%H:%M} UTC.",
    )
