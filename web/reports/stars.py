"""The slow aggregate: stars gained per repository and per language over the last 24 h, 7 d and 30 d.

It walks every stored snapshot of the widest window once, ordered by repository and time, keeping only
one repository's state in memory, so it scales with rows scanned and not with memory. "Gained" is the
last count seen in the window minus the first, so a repository that entered the top 100 halfway through
counts from the moment it was first seen.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db.models import Max

from web.trending.models import RepositorySnapshot

#: The windows the report covers, widest last (the scan reads the widest one).
WINDOWS: tuple[tuple[str, str, timedelta], ...] = (
    ("24h", "Last 24 hours", timedelta(hours=24)),
    ("7d", "Last 7 days", timedelta(days=7)),
    ("30d", "Last 30 days", timedelta(days=30)),
)
#: Repositories listed per window; the chart shows the first ten of them.
TOP_REPOSITORIES = 15
#: Rows fetched per round trip while scanning.
SCAN_CHUNK_ROWS = 5_000
#: How the report names repositories whose language GitHub reports as null.
NO_LANGUAGE = "(no language)"


@dataclass
class _Seen:
    """What one repository looked like at the start and end of each window."""

    first: dict[str, int] = field(default_factory=dict)
    last_stars: int = 0
    last_at: datetime | None = None
    language: str = ""


def stars_report(*, as_of: datetime | None = None) -> dict[str, Any]:
    """Compute the report as of `as_of` (default: the newest snapshot). Returns plain JSON-able data."""
    if as_of is None:
        as_of = RepositorySnapshot.objects.aggregate(newest=Max("fetched_at"))["newest"]
    if as_of is None:
        return {"as_of": None, "rows_scanned": 0, "windows": []}
    since = {key: as_of - span for key, _, span in WINDOWS}
    widest = min(since.values())
    rows = (
        RepositorySnapshot.objects.filter(fetched_at__gt=widest, fetched_at__lte=as_of)
        .order_by("full_name", "fetched_at")
        .values_list("full_name", "fetched_at", "stars", "language")
        .iterator(chunk_size=SCAN_CHUNK_ROWS)
    )
    gains: dict[str, list[dict[str, Any]]] = {key: [] for key in since}
    scanned = _scan(rows, since, gains)
    windows = []
    for key, label, _ in WINDOWS:
        repositories = sorted(gains[key], key=lambda repo: (-repo["gained"], repo["full_name"]))
        windows.append(
            {
                "key": key,
                "label": label,
                "since": since[key].isoformat(),
                "total_gained": sum(repo["gained"] for repo in repositories),
                "repository_count": len(repositories),
                "repositories": repositories[:TOP_REPOSITORIES],
                "languages": _by_language(repositories),
            }
        )
    return {"as_of": as_of.isoformat(), "rows_scanned": scanned, "windows": windows}


def _scan(
    rows: Iterable[tuple[str, datetime, int, str]],
    since: dict[str, datetime],
    gains: dict[str, list[dict[str, Any]]],
) -> int:
    scanned = 0
    current: str | None = None
    seen = _Seen()
    for full_name, fetched_at, stars, language in rows:
        scanned += 1
        if full_name != current:
            if current is not None:
                _close(current, seen, gains)
            current, seen = full_name, _Seen()
        for key, start in since.items():
            if fetched_at > start and key not in seen.first:
                seen.first[key] = stars
        seen.last_stars, seen.last_at, seen.language = stars, fetched_at, language
    if current is not None:
        _close(current, seen, gains)
    return scanned


def _close(full_name: str, seen: _Seen, gains: dict[str, list[dict[str, Any]]]) -> None:
    for key, first in seen.first.items():
        gains[key].append(
            {
                "full_name": full_name,
                "language": seen.language or NO_LANGUAGE,
                "stars": seen.last_stars,
                "gained": seen.last_stars - first,
            }
        )


def _by_language(repositories: list[dict[str, Any]]) -> list[dict[str, Any]]:
    totals: dict[str, dict[str, Any]] = {}
    for repo in repositories:
        entry = totals.setdefault(
            repo["language"], {"language": repo["language"], "gained": 0, "repositories": 0}
        )
        entry["gained"] += repo["gained"]
        entry["repositories"] += 1
    return sorted(totals.values(), key=lambda entry: (-entry["gained"], entry["language"]))
