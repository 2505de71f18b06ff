"""Fill the database with made-up GitHub snapshot history, so the report is slow and exports are large.

    python manage.py seed_demo_data --snapshots 4320     # 30 days of 10-minute polls, 432,000 rows

Each snapshot is one poll of 100 repositories, spaced 10 minutes apart and ending now. Running the
command again replaces the demo history it wrote before (those polls carry the ETag "demo-seed");
polls made by the real GitHub poller are left alone. `--clear` only deletes the demo history.
"""

from __future__ import annotations

import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from web.reports.demo_data import TOP_N, demo_history_create, demo_history_delete


class Command(BaseCommand):
    help = "Replace the demo GitHub snapshot history with N polls of 100 repositories each."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--snapshots", type=int, default=1000, help="polls to write (default 1000)")
        parser.add_argument("--seed", type=int, default=0, help="random seed, for repeatable data")
        parser.add_argument("--clear", action="store_true", help="only delete the demo history")

    def handle(self, *args: Any, snapshots: int, seed: int, clear: bool, **options: Any) -> None:
        started = time.monotonic()
        if clear:
            deleted = demo_history_delete()
            self.stdout.write(f"Deleted {deleted} demo polls.")
            return
        if snapshots < 1:
            raise CommandError("--snapshots must be at least 1.")
        rows = demo_history_create(polls=snapshots, end=timezone.now(), seed=seed)
        elapsed = time.monotonic() - started
        self.stdout.write(
            self.style.SUCCESS(
                f"Wrote {snapshots} demo polls ({rows} snapshot rows of {TOP_N} repositories each) "
                f"in {elapsed:.1f} s."
            )
        )
