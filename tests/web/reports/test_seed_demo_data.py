from __future__ import annotations

import io

import pytest
from django.core.management import call_command
from django.utils import timezone

from web.trending.models import Poll, RepositorySnapshot


def seed(*args: str) -> str:
    out = io.StringIO()
    call_command("seed_demo_data", *args, stdout=out)
    return out.getvalue()


@pytest.mark.django_db
def test_seeding_writes_n_polls_of_100_ranked_repositories_with_growing_stars():
    output = seed("--snapshots", "4")

    polls = list(Poll.objects.order_by("started_at"))
    assert "Wrote 4 demo polls (400 snapshot rows" in output
    assert len(polls) == 4
    assert [p.repository_count for p in polls] == [100] * 4
    assert all(p.snapshots.count() == 100 for p in polls)
    assert list(polls[-1].snapshots.order_by("rank").values_list("rank", flat=True)) == list(range(1, 101))
    top = polls[0].snapshots.get(rank=1)
    later = RepositorySnapshot.objects.filter(full_name=top.full_name).order_by("-fetched_at").first()
    assert later.stars >= top.stars
    assert (polls[1].started_at - polls[0].started_at).total_seconds() == 600
    assert polls[-1].started_at <= timezone.now()


@pytest.mark.django_db
def test_seeded_rows_include_nulls_and_non_ascii_names():
    seed("--snapshots", "1")

    rows = RepositorySnapshot.objects.all()
    assert rows.filter(language="").exists()
    assert rows.filter(license="").exists()
    assert rows.filter(description="").exists()
    assert any(not name.isascii() for name in rows.values_list("full_name", flat=True))


@pytest.mark.django_db
def test_seeding_again_replaces_the_demo_history_and_leaves_real_polls_alone():
    real = Poll.objects.create(started_at=timezone.now(), status=Poll.Status.CHANGED, etag='W/"abc"')
    seed("--snapshots", "3")

    seed("--snapshots", "2")

    assert Poll.objects.exclude(pk=real.pk).count() == 2
    assert RepositorySnapshot.objects.count() == 200
    assert "Deleted 2 demo polls." in seed("--clear")
    assert list(Poll.objects.all()) == [real]
