"""Per-actor statistics, the 24-hour charts and the queue-depth samples behind them."""

import re
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from tasks.echo import echo
from tasks.sample_queue_depths import sample_queue_depths
from tests.waiting import wait_until
from web.ops.aggregates import percentile
from web.ops.models import QueueDepthSample, TaskRun
from web.ops.selectors import ActorStats, actor_stats, throughput
from web.ops.services import queue_depth_sample

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def record(actor="echo", *, minutes_ago, status="succeeded", attempts=1, duration_ms=100):
    """A task-run record as the TaskRuns middleware leaves it, started that long before NOW."""
    started = NOW - timedelta(minutes=minutes_ago)
    running = status == "running"
    TaskRun.objects.create(
        message_id=uuid.uuid4().hex,
        actor_name=actor,
        queue_name="default",
        status=status,
        attempts=attempts,
        started_at=started,
        finished_at=None if running else started + timedelta(milliseconds=duration_ms),
        duration_ms=None if running else duration_ms,
    )


def test_percentiles_are_nearest_rank_and_absent_without_durations():
    durations = list(range(1, 101))

    assert (percentile(durations, 0.5), percentile(durations, 0.95)) == (50, 95)
    assert (percentile([7], 0.5), percentile([7], 0.95)) == (7, 7)
    assert percentile([], 0.95) is None


@pytest.mark.django_db
def test_actor_statistics_count_attempts_failures_and_retries_in_each_window():
    record(minutes_ago=10, duration_ms=100)
    record(minutes_ago=20, duration_ms=300, attempts=3)  # failed twice, then worked
    record(minutes_ago=30, status="failed", attempts=4, duration_ms=50)  # gave up
    record(minutes_ago=120, duration_ms=1000)
    record(minutes_ago=23 * 60, duration_ms=2000)
    record(minutes_ago=25 * 60, duration_ms=9000)  # older than a day: not counted
    record(minutes_ago=5, status="running")
    record(minutes_ago=6, status="skipped", duration_ms=0)  # a repeat it did not run
    record("send_mail", minutes_ago=3 * 60, duration_ms=40)

    rows = actor_stats(now=NOW)

    assert [row.actor for row in rows] == ["echo", "send_mail"]
    echo_row, mail_row = rows
    assert echo_row.hour == ActorStats(runs=9, failures=1, retries=5, p50_ms=100, p95_ms=300)
    assert echo_row.day == ActorStats(runs=11, failures=1, retries=5, p50_ms=300, p95_ms=2000)
    assert mail_row.hour == ActorStats()
    assert mail_row.day == ActorStats(runs=1, p50_ms=40, p95_ms=40)


@pytest.mark.django_db
def test_throughput_counts_finished_runs_per_bucket_apart_from_those_that_raised():
    record(minutes_ago=14, duration_ms=60_000)  # finished 13 minutes before NOW
    record(minutes_ago=10)
    record(minutes_ago=9, status="retrying")
    record(minutes_ago=20, status="failed")  # in the first bucket
    record(minutes_ago=3, status="running")  # not finished: not counted
    record(minutes_ago=40)  # before the chart starts

    buckets = throughput(start=NOW - timedelta(minutes=30), end=NOW, step=timedelta(minutes=15))

    assert [(b.start.strftime("%H:%M"), b.succeeded, b.failed) for b in buckets] == [
        ("11:30", 0, 1),
        ("11:45", 2, 1),
    ]


@pytest.mark.django_db(transaction=True)
def test_the_page_shows_each_actors_numbers_for_the_hour_and_the_day(admin_client, broker):
    now = timezone.now()
    for i, (age, status, attempts, duration) in enumerate(
        [
            (timedelta(minutes=5), "succeeded", 1, 120),
            (timedelta(minutes=6), "succeeded", 2, 80),
            (timedelta(minutes=7), "failed", 3, 30),
            (timedelta(hours=5), "succeeded", 1, 4_000),
        ]
    ):
        TaskRun.objects.create(
            message_id=f"m{i}",
            actor_name="make_thumbnails",
            queue_name="default",
            status=status,
            attempts=attempts,
            started_at=now - age,
            finished_at=now - age + timedelta(milliseconds=duration),
            duration_ms=duration,
        )

    page = admin_client.get("/ops/").content.decode()

    row = re.search(r'<th scope="row">make_thumbnails</th>(.*?)</tr>', page, re.S).group(1)
    cells = [re.sub(r"<[^>]+>", "", cell).strip() for cell in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)]
    assert cells == [
        # last hour: runs, failed, retries, p50, p95
        "6", "1", "3", "80 ms", "120 ms",
        # last 24 hours
        "7", "1", "3", "80 ms", "4000 ms",
    ]  # fmt: skip
    assert "Last 24 hours: 4 runs finished, 1 of them raised an error." in page
    assert 'aria-label="Runs finished per 15 minutes, last 24 hours (UTC)"' in page


@pytest.mark.django_db(transaction=True)
def test_a_depth_sample_records_each_queue_as_sqs_counts_it(broker):
    for text in ("one", "two", "three"):
        echo.send(text)  # no worker: they wait

    [sample] = queue_depth_sample(broker=broker)

    assert (sample.queue_name, sample.visible, sample.in_flight, sample.delayed, sample.dead_letters) == (
        "default",
        3,
        0,
        0,
        0,
    )


@pytest.mark.django_db(transaction=True)
def test_the_sampling_job_run_by_a_worker_stores_a_sample_and_drops_those_past_two_days(broker, worker):
    now = timezone.now()
    for hours in (49, 47):
        QueueDepthSample.objects.create(
            queue_name="default",
            sampled_at=now - timedelta(hours=hours),
            visible=1,
            in_flight=0,
            delayed=0,
            dead_letters=0,
        )

    sample_queue_depths.send()

    wait_until(lambda: QueueDepthSample.objects.filter(sampled_at__gte=now).exists(), what="a new sample")
    ages = sorted(round((now - s.sampled_at) / timedelta(hours=1)) for s in QueueDepthSample.objects.all())
    assert ages == [0, 47]


@pytest.mark.django_db(transaction=True)
def test_the_depth_chart_says_what_the_latest_and_the_deepest_samples_were(admin_client, broker):
    now = timezone.now().replace(second=0, microsecond=0)
    for minutes_ago, visible, dead in [(90, 2, 0), (60, 40, 1), (1, 5, 3)]:
        QueueDepthSample.objects.create(
            queue_name="default",
            sampled_at=now - timedelta(minutes=minutes_ago),
            visible=visible,
            in_flight=1,
            delayed=0,
            dead_letters=dead,
        )

    page = admin_client.get("/ops/").content.decode()

    latest, deepest = now - timedelta(minutes=1), now - timedelta(minutes=60)
    assert (
        f"Queue default, latest sample at {latest:%H:%M} UTC: 5 waiting, 1 in flight, 3 dead letters. "
        f"Most waiting: 40 at {deepest:%H:%M} UTC."
    ) in page
    assert 'aria-label="Queue default: messages, last 24 hours (UTC)"' in page
    # Samples an hour apart are not joined: each is drawn as a point of its own.
    assert page.count("<circle") == 9
