from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from django.utils import timezone

from web.reports.stars import NO_LANGUAGE, stars_report
from web.trending.models import Poll, RepositorySnapshot


def store_poll(at: datetime, repositories: list[tuple[str, str, int]]) -> None:
    """One poll at `at` that saw (full_name, language, stars) in this order."""
    poll = Poll.objects.create(started_at=at, finished_at=at, status=Poll.Status.CHANGED)
    RepositorySnapshot.objects.bulk_create(
        RepositorySnapshot(
            poll=poll,
            fetched_at=at,
            rank=rank,
            github_id=hash(name) % 1_000_000,
            full_name=name,
            html_url=f"https://github.com/{name}",
            language=language,
            stars=stars,
            forks=0,
        )
        for rank, (name, language, stars) in enumerate(repositories, start=1)
    )


def window(report: dict, key: str) -> dict:
    return next(w for w in report["windows"] if w["key"] == key)


@pytest.mark.django_db
def test_stars_gained_count_from_the_first_to_the_last_snapshot_inside_each_window():
    now = timezone.now().replace(microsecond=0)
    store_poll(now - timedelta(days=40), [("old/kept", "Python", 100)])
    store_poll(now - timedelta(days=20), [("old/kept", "Python", 120)])
    store_poll(now - timedelta(days=3), [("old/kept", "Python", 150), ("new/comer", "", 10)])
    store_poll(now - timedelta(hours=1), [("old/kept", "Python", 190), ("new/comer", "", 20)])
    store_poll(now, [("old/kept", "Python", 200), ("new/comer", "", 50), ("über/schnell", "Rust", 7)])

    report = stars_report()

    gained = {
        key: {r["full_name"]: r["gained"] for r in window(report, key)["repositories"]}
        for key in ("24h", "7d", "30d")
    }
    assert gained["24h"] == {"old/kept": 10, "new/comer": 30, "über/schnell": 0}
    assert gained["7d"] == {"old/kept": 50, "new/comer": 40, "über/schnell": 0}
    assert gained["30d"] == {"old/kept": 80, "new/comer": 40, "über/schnell": 0}
    assert report["rows_scanned"] == 8  # the 40-day-old snapshot is outside every window
    assert window(report, "7d")["languages"] == [
        {"language": "Python", "gained": 50, "repositories": 1},
        {"language": NO_LANGUAGE, "gained": 40, "repositories": 1},
        {"language": "Rust", "gained": 0, "repositories": 1},
    ]
    assert window(report, "30d")["total_gained"] == 120


@pytest.mark.django_db
def test_a_report_over_no_snapshots_is_empty_rather_than_an_error():
    assert stars_report() == {"as_of": None, "rows_scanned": 0, "windows": []}
