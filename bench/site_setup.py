"""The Django side of the site benchmark: the data the pages show, the accounts, and the thumbnails made.

Run by bench/site.py in the project's virtualenv, with the settings the site runs with:

    python -m bench.site_setup photo PATH           # one 6 MB photo-like JPEG (made once, then kept)
    python -m bench.site_setup prepare              # migrate, collect static, history, a report, accounts
    python -m bench.site_setup thumbnails FROM TO   # JSON: the images uploaded between two epoch times
    python -m bench.site_setup drained TIMEOUT_S    # waits until no image is pending; JSON: how long

Each prints one line of JSON (or nothing) on stdout, for bench/site.py to read.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

#: A phone camera's 12 megapixels; the noise makes the JPEG as large as a real photo of that size.
PHOTO_SIZE = (4032, 3024)
#: The upload the brief asks for: a 6 MB photo.
PHOTO_BYTES = 6_000_000
#: Polls of made-up history behind /trending/ and /reports/ (two days of 10-minute polls: the pages
#: read the latest poll and the stored report, so more history would only lengthen the set-up).
HISTORY_POLLS = 288
#: Every account's password (the accounts live in a database deleted after the run).
PASSWORD = "bench-correct-horse-battery-staple"
#: Accounts user0..user9 are the uploaders' (and the lone visitor's); a log-in burst uses the next ones.
UPLOADER_ACCOUNTS = 10
#: People who log in at the same instant in each burst (issue 14's figure).
BURST_SIZE = 20
#: Every account `prepare` makes.
ACCOUNTS = UPLOADER_ACCOUNTS + BURST_SIZE


def photo(path: Path) -> None:
    """A 12 MP JPEG of at least PHOTO_BYTES: smooth gradients under grain, as a photo has."""
    from PIL import Image, ImageChops

    if path.exists() and path.stat().st_size >= PHOTO_BYTES:
        return
    channels = []
    for turn in range(3):
        gradient = Image.linear_gradient("L").rotate(90 * turn).resize(PHOTO_SIZE)
        channels.append(ImageChops.add(gradient, Image.effect_noise(PHOTO_SIZE, 32), scale=2.0))
    picture = Image.merge("RGB", channels)
    for quality in range(88, 99):
        data = io.BytesIO()
        picture.save(data, "JPEG", quality=quality)
        if data.tell() >= PHOTO_BYTES:
            break
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.getvalue())


def prepare() -> None:
    """Migrate, collect static files, write history and one report, and make the ACCOUNTS active users."""
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.utils import timezone

    from web.reports.demo_data import demo_history_create
    from web.reports.services import report_regenerate

    call_command("migrate", interactive=False, verbosity=0)
    call_command("collectstatic", interactive=False, verbosity=0)
    demo_history_create(polls=HISTORY_POLLS, end=timezone.now())
    report_regenerate(run_id=None)  # the schedule's run, here and now: /reports/ has a snapshot to show
    users = get_user_model()
    for number in range(ACCOUNTS):
        email = f"user{number}@bench.example"
        users.objects.create_user(username=email, email=email, password=PASSWORD, is_active=True)


def thumbnails(since: float, until: float) -> dict[str, float | int | None]:
    """What became of the images uploaded between two times: made, failed, pending, and how fast."""
    from web.images.models import Image

    window = Image.objects.filter(
        created_at__gte=datetime.fromtimestamp(since, UTC), created_at__lt=datetime.fromtimestamp(until, UTC)
    )
    done = list(window.filter(status=Image.Status.DONE).values_list("created_at", "processed_at"))
    waits = sorted((processed - created).total_seconds() * 1000 for created, processed in done)
    made_s = None
    if len(done) > 1:
        first = min(created for created, _ in done)
        last = max(processed for _, processed in done)
        made_s = round(len(done) / (last - first).total_seconds(), 2)
    return {
        "uploaded": window.count(),
        "done": len(done),
        "failed": window.filter(status=Image.Status.FAILED).count(),
        "pending": window.filter(status=Image.Status.PENDING).count(),
        "made_per_s": made_s,
        "wait_p50_ms": round(waits[len(waits) // 2]) if waits else None,
        "wait_max_ms": round(waits[-1]) if waits else None,
    }


def drained(timeout_s: float) -> dict[str, float | int]:
    """Wait (looking twice a second) until the worker has no image left to do, or timeout_s passes."""
    from web.images.models import Image

    started = time.monotonic()
    pending = Image.objects.filter(status=Image.Status.PENDING).count()
    while pending and time.monotonic() - started < timeout_s:
        time.sleep(0.5)
        pending = Image.objects.filter(status=Image.Status.PENDING).count()
    return {"pending": pending, "waited_s": round(time.monotonic() - started, 1)}


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.site_setup", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("photo").add_argument("path", type=Path)
    commands.add_parser("prepare")
    window = commands.add_parser("thumbnails")
    window.add_argument("since", type=float)
    window.add_argument("until", type=float)
    commands.add_parser("drained").add_argument("timeout_s", type=float)
    args = parser.parse_args(argv)
    if args.command == "photo":
        photo(args.path)
        return
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "web.settings")
    import django

    django.setup()
    if args.command == "prepare":
        prepare()
    elif args.command == "thumbnails":
        print(json.dumps(thumbnails(args.since, args.until)))
    else:
        print(json.dumps(drained(args.timeout_s)))


if __name__ == "__main__":
    main(sys.argv[1:])
