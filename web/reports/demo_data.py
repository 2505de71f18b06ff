"""Made-up GitHub snapshot history for demos and benchmarks (`manage.py seed_demo_data`).

Each poll stores the top 100 of a slightly larger universe of repositories, so ranks shuffle and
repositories enter and leave the list the way they do on GitHub. Stars grow at a per-repository rate
with noise and the odd viral day; some fields are null (stored as ""), and some names and descriptions
are not ASCII or carry CSV's special characters, so exports and charts meet real-world text.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import reset_queries, transaction

from web.trending.models import Poll, RepositorySnapshot

#: Every demo poll carries this ETag, so a re-run can replace them and never touches a real poll
#: (GitHub's ETags are quoted hashes, never this word).
DEMO_ETAG = "demo-seed"
#: How often the real poll runs; demo polls are spaced the same way.
POLL_INTERVAL = timedelta(minutes=10)
#: Rows per top list, as the GitHub search API returns them.
TOP_N = 100
#: Repositories that compete for the top 100.
UNIVERSE = 130
#: Polls written per bulk_create round, so memory stays flat whatever N is.
POLLS_PER_BATCH = 50

_LANGUAGES = [
    "Python",
    "TypeScript",
    "JavaScript",
    "Rust",
    "Go",
    "C++",
    "Java",
    "C",
    "Kotlin",
    "Swift",
    "Zig",
]
_LICENSES = ["MIT", "Apache-2.0", "GPL-3.0", "BSD-3-Clause", "MPL-2.0"]
_OWNERS = ["acme", "octo-labs", "café-society", "zürich-ai", "東京dev", "open-source-org", "nordlys", "ñandú"]
_WORDS = ["awesome", "fast", "tiny", "deep", "build", "graph", "lang", "ui", "db", "ml", "kit", "ops", "flow"]
_ODD_DESCRIPTIONS = [
    "Ein schnelles Werkzeug für Daten — «schnell», sagen sie",
    "超高速なウェブフレームワーク 🚀",
    'Quotes "inside", commas, and\na newline',
    "Ñoño: el parser más rápido del oeste",
]


@dataclass
class _Repo:
    github_id: int
    full_name: str
    description: str
    language: str
    license: str
    stars: float
    per_poll: float
    forks_ratio: float
    open_issues: int


def _universe(rng: random.Random) -> list[_Repo]:
    repos = []
    for i in range(UNIVERSE):
        owner = rng.choice(_OWNERS)
        name = f"{rng.choice(_WORDS)}-{rng.choice(_WORDS)}-{i}"
        description = rng.choice(_ODD_DESCRIPTIONS) if i % 9 == 0 else f"A {rng.choice(_WORDS)} thing"
        repos.append(
            _Repo(
                github_id=10_000_000 + i * 7919,
                full_name=f"{owner}/{name}",
                # GitHub sends null for these often enough that pages and exports must cope.
                description="" if i % 11 == 0 else description,
                language="" if i % 13 == 0 else rng.choice(_LANGUAGES),
                license="" if i % 7 == 0 else rng.choice(_LICENSES),
                stars=float(int(rng.lognormvariate(11.3, 0.6))),
                # Stars per 10 minutes: most repositories gain a few a day, a few gain thousands.
                per_poll=rng.lognormvariate(0.0, 1.2),
                forks_ratio=rng.uniform(0.05, 0.3),
                open_issues=rng.randint(0, 3000),
            )
        )
    return repos


def _advance(repos: list[_Repo], rng: random.Random) -> None:
    for repo in repos:
        gained = rng.gauss(repo.per_poll, repo.per_poll / 2)
        if rng.random() < 0.0005:
            gained += rng.randint(500, 5000)  # a front-page day
        repo.stars = max(0.0, repo.stars + gained)
        repo.open_issues = max(0, repo.open_issues + rng.randint(-2, 2))


def _snapshots(poll: Poll, repos: list[_Repo]) -> Iterator[RepositorySnapshot]:
    ranked = sorted(repos, key=lambda repo: repo.stars, reverse=True)[:TOP_N]
    for rank, repo in enumerate(ranked, start=1):
        stars = int(repo.stars)
        yield RepositorySnapshot(
            poll=poll,
            fetched_at=poll.finished_at,
            rank=rank,
            github_id=repo.github_id,
            full_name=repo.full_name,
            html_url=f"https://github.com/{repo.full_name}",
            description=repo.description,
            language=repo.language,
            license=repo.license,
            stars=stars,
            forks=int(stars * repo.forks_ratio),
            open_issues=repo.open_issues,
        )


def demo_history_delete() -> int:
    """Delete the demo polls a previous run made (and their snapshots); returns how many polls."""
    RepositorySnapshot.objects.filter(poll__etag=DEMO_ETAG).delete()
    deleted, _ = Poll.objects.filter(etag=DEMO_ETAG).delete()
    return deleted


def demo_history_create(*, polls: int, end: datetime, seed: int = 0) -> int:
    """Replace the demo history with `polls` polls ending at `end`; returns the snapshot rows written."""
    rng = random.Random(seed)
    repos = _universe(rng)
    first = end - POLL_INTERVAL * (polls - 1)
    written = 0
    demo_history_delete()
    for start in range(0, polls, POLLS_PER_BATCH):
        with transaction.atomic():
            batch = []
            for i in range(start, min(start + POLLS_PER_BATCH, polls)):
                started = first + POLL_INTERVAL * i
                batch.append(
                    Poll(
                        started_at=started,
                        finished_at=started + timedelta(seconds=2),
                        status=Poll.Status.CHANGED,
                        etag=DEMO_ETAG,
                        repository_count=TOP_N,
                    )
                )
            # bulk_create sets the primary keys (RETURNING on SQLite and Postgres), which the rows need.
            Poll.objects.bulk_create(batch)
            rows = []
            for poll in batch:
                _advance(repos, rng)
                rows.extend(_snapshots(poll, repos))
            RepositorySnapshot.objects.bulk_create(rows, batch_size=2000)
            written += len(rows)
        # With DEBUG on, Django keeps the text of every query, and each bulk insert is a big one.
        reset_queries()
    return written
