"""The schedule table at fixed times: which jobs are due when."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from scheduler.jobs import jobs_due, schedule


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def by_name():
    return {job.name: job for job in schedule()}


def jobs_due_but_the_sample(start, end):
    """The due slots, less the queue-depth sample's one a minute."""
    return [(slot, name) for slot, name in jobs_due(start, end) if name != "sample_queue_depths"]


def test_the_table_names_the_poll_the_report_the_depth_sample_and_the_two_prunes_by_their_actors():
    assert {job.name: job.actor_name for job in schedule()} == {
        "poll_github": "poll_github_top_repos",
        "regenerate_report": "regenerate_report",
        "sample_queue_depths": "sample_queue_depths",
        "prune_task_runs": "prune_task_runs",
        "prune_expired_exports": "prune_expired_exports",
    }


def test_in_the_first_hour_of_a_day_the_poll_runs_every_ten_minutes_and_the_report_on_the_hour():
    due = jobs_due_but_the_sample(at("2026-03-01 00:00:00"), at("2026-03-01 01:00:00"))

    assert due == [
        (at("2026-03-01 00:00:00"), "poll_github"),
        (at("2026-03-01 00:00:00"), "regenerate_report"),
        (at("2026-03-01 00:10:00"), "poll_github"),
        (at("2026-03-01 00:20:00"), "poll_github"),
        (at("2026-03-01 00:30:00"), "poll_github"),
        (at("2026-03-01 00:40:00"), "poll_github"),
        (at("2026-03-01 00:50:00"), "poll_github"),
        (at("2026-03-01 01:00:00"), "poll_github"),
        (at("2026-03-01 01:00:00"), "regenerate_report"),
    ]


def test_the_prunes_run_once_a_day_at_night_utc():
    due = jobs_due(at("2026-03-01 03:00:00"), at("2026-03-02 02:59:59"))
    prunes = [(slot, name) for slot, name in due if name.startswith("prune")]

    assert prunes == [
        (at("2026-03-01 03:30:00"), "prune_task_runs"),
        (at("2026-03-01 03:45:00"), "prune_expired_exports"),
    ]
    assert sum(1 for _, name in due if name == "poll_github") == 24 * 6
    assert sum(1 for _, name in due if name == "regenerate_report") == 24


def test_a_day_has_the_same_slots_whenever_it_is_computed_because_slots_follow_the_clock():
    first = jobs_due_but_the_sample(at("2026-07-14 09:03:17"), at("2026-07-14 09:31:00"))
    again = jobs_due_but_the_sample(at("2026-07-14 09:03:17"), at("2026-07-14 09:31:00"))

    assert (
        first
        == again
        == [
            (at("2026-07-14 09:10:00"), "poll_github"),
            (at("2026-07-14 09:20:00"), "poll_github"),
            (at("2026-07-14 09:30:00"), "poll_github"),
        ]
    )


def test_a_late_scheduler_runs_the_latest_slot_within_the_misfire_grace_and_skips_older_ones():
    poll = by_name()["poll_github"]

    assert poll.misfire_grace == timedelta(minutes=5)
    assert poll.latest_slot(at("2026-03-01 12:14:59"), within=poll.misfire_grace) == at("2026-03-01 12:10:00")
    assert poll.latest_slot(at("2026-03-01 12:10:00"), within=poll.misfire_grace) == at("2026-03-01 12:10:00")
    assert poll.latest_slot(at("2026-03-01 12:15:00"), within=poll.misfire_grace) is None
    # Catching up after a long stop coalesces every missed slot into the latest one.
    assert poll.latest_slot(at("2026-03-01 12:37:00"), within=poll.catch_up_after) == at(
        "2026-03-01 12:30:00"
    )


def test_the_report_missed_at_the_hour_is_still_run_a_quarter_hour_late_but_not_later():
    report = by_name()["regenerate_report"]

    assert report.latest_slot(at("2026-03-01 13:14:00"), within=report.misfire_grace) == at(
        "2026-03-01 13:00:00"
    )
    assert report.latest_slot(at("2026-03-01 13:16:00"), within=report.misfire_grace) is None


def test_a_shorter_poll_interval_from_settings_gives_clock_aligned_slots(settings):
    settings.GITHUB_POLL_INTERVAL_MS = 1_500

    due = jobs_due(at("2026-03-01 00:00:00"), at("2026-03-01 00:00:05"))

    assert [slot for slot, name in due if name == "poll_github"] == [
        at("2026-03-01 00:00:00"),
        at("2026-03-01 00:00:01.500000"),
        at("2026-03-01 00:00:03"),
        at("2026-03-01 00:00:04.500000"),
    ]


def test_queue_depths_are_sampled_on_every_minute_and_a_sample_half_a_minute_late_is_skipped():
    sample = by_name()["sample_queue_depths"]
    due = jobs_due(at("2026-03-01 10:00:30"), at("2026-03-01 10:03:00"))

    assert [slot for slot, name in due if name == "sample_queue_depths"] == [
        at("2026-03-01 10:01:00"),
        at("2026-03-01 10:02:00"),
        at("2026-03-01 10:03:00"),
    ]
    assert sample.latest_slot(at("2026-03-01 10:01:29"), within=sample.misfire_grace) == at(
        "2026-03-01 10:01:00"
    )
    assert sample.latest_slot(at("2026-03-01 10:01:31"), within=sample.misfire_grace) is None
