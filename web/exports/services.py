"""Writes for exports: start one, write its CSV into storage, delete one, and prune expired ones."""

from __future__ import annotations

import csv
import io
import logging
import tempfile
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import IO

from django.conf import settings
from django.contrib.auth.base_user import AbstractBaseUser
from django.core.files import File
from django.db import transaction
from django.db.models import Max, Q
from django.utils import timezone

from web.core.enqueue import enqueue_on_commit
from web.core.single_flight import run_claim, run_fail, run_start, runs_abandon
from web.exports.models import ABANDONED, Export, export_storage
from web.exports.signals import export_progressed
from web.trending.models import RepositorySnapshot

logger = logging.getLogger(__name__)

#: The CSV's columns, in order; each is a RepositorySnapshot field except poll_id.
COLUMNS = (
    "poll_id",
    "fetched_at",
    "rank",
    "github_id",
    "full_name",
    "html_url",
    "description",
    "language",
    "license",
    "stars",
    "forks",
    "open_issues",
)
#: A cell starting with one of these is a formula to a spreadsheet (OWASP, "CSV Injection").
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


class ExportLimitReached(Exception):
    """Raised when the owner keeps EXPORT_MAX_KEPT_PER_USER finished exports; the message says what to do."""


def export_start(*, owner: AbstractBaseUser) -> tuple[Export, bool]:
    """Queue an export for `owner` unless one of theirs is in flight; returns it and whether it is new.

    One export per owner is in flight at a time (the database's single-flight constraint), and an
    owner keeps at most EXPORT_MAX_KEPT_PER_USER finished ones: ExportLimitReached says so.
    """
    # Imported here because the actor's module imports this one (tasks -> web services).
    from tasks.export_csv import export_csv

    limit = settings.EXPORT_MAX_KEPT_PER_USER
    mine = Export.objects.filter(owner=owner)
    with transaction.atomic():
        # Stuck exports are given up first: a worker that died mid-export would otherwise hold the
        # owner's slot until the daily prune.
        runs_abandon(mine, stale=_stuck(), error=ABANDONED)
        if not mine.filter(status__in=Export.IN_FLIGHT).exists() and export_kept(owner=owner) >= limit:
            raise ExportLimitReached(
                f"You already keep {limit} finished exports, the most allowed. "
                "Delete one you no longer need to start another."
            )
    return run_start(
        Export.objects.filter(owner=owner),
        create=lambda: Export.objects.create(owner=owner, created_at=timezone.now()),
        stale=_stuck(),
        abandoned=ABANDONED,
        started=lambda export: enqueue_on_commit(export_csv, export_id=export.pk),
    )


def export_write(*, export_id: int) -> Export | None:
    """Write the export's CSV into storage, saving progress per chunk. Safe to call twice.

    Returns the finished export, or None when another delivery already took or finished it.
    """
    export = run_claim(Export.objects.all(), run_id=export_id, updated_at=timezone.now(), rows_written=0)
    if export is None:
        return None
    started = time.monotonic()
    try:
        _write(export)
    except BaseException as e:
        # BaseException: dramatiq's time limit interrupts the thread with one, and the export must not
        # stay "running" when that happens. The actor's retries claim the failed export again.
        run_fail(Export.objects.all(), run_id=export.pk, error=e)
        raise
    elapsed = time.monotonic() - started
    logger.info(
        "Export %r wrote %d rows (%d bytes) in %.1f s.",
        export.pk,
        export.rows_written,
        export.size_bytes,
        elapsed,
    )
    return export


def _write(export: Export) -> None:
    # Rows stored after this moment belong to the next export; fixing the last id up front also makes
    # the total (and so the progress bar) exact.
    last_id = RepositorySnapshot.objects.aggregate(last=Max("pk"))["last"] or 0
    export.rows_total = RepositorySnapshot.objects.filter(pk__lte=last_id).count()
    Export.objects.filter(pk=export.pk).update(rows_total=export.rows_total)
    # Rows go through a temporary file, not memory: the process holds one chunk at a time, and the
    # storage backend then copies the file in pieces (S3: a multipart upload), whatever its size.
    with tempfile.TemporaryFile() as spool:
        text = io.TextIOWrapper(spool, encoding="utf-8", newline="")
        writer = csv.writer(text)
        writer.writerow(COLUMNS)
        written = 0
        for chunk in _chunks(last_id, settings.EXPORT_CHUNK_ROWS):
            writer.writerows(chunk)
            written += len(chunk)
            _progress(export, written)
        if not written:
            _progress(export, 0)
        text.flush()
        text.detach()
        export.size_bytes = spool.tell()
        spool.seek(0)
        name = _save(export, spool)
    now = timezone.now()
    export.status, export.file_name, export.finished_at = Export.Status.DONE, name, now
    export.expires_at = now + timedelta(hours=settings.EXPORT_RETENTION_HOURS)
    export.save(
        update_fields=["status", "file_name", "size_bytes", "finished_at", "expires_at", "rows_total"]
    )


def _chunks(last_id: int, size: int) -> Iterator[list[tuple]]:
    """The snapshot rows up to last_id in the order they were stored (poll by poll, by rank), as CSV rows.

    One query per chunk (keyset on the primary key) rather than one query over everything: on SQLite a
    statement still being read keeps the connection's implicit transaction open, so the progress
    written between chunks would neither commit nor let any other process write until the export
    ended. Each chunk is read with .iterator(), so no queryset caches it.
    """
    after = 0
    while True:
        page = (
            RepositorySnapshot.objects.filter(pk__gt=after, pk__lte=last_id)
            .order_by("pk")
            .values_list("pk", *COLUMNS)[:size]
        )
        rows = [_csv_row(row) for row in page.iterator(chunk_size=size)]
        if not rows:
            return
        after = rows[-1][0]
        yield [row[1:] for row in rows]
        if len(rows) < size:
            return


def _csv_row(row: tuple) -> tuple:
    # (pk, poll_id, fetched_at, ...): fetched_at as ISO 8601 in UTC, which every parser reads alike.
    return (row[0], row[1], row[2].isoformat(), *(_cell(value) for value in row[3:]))


def _cell(value: object) -> object:
    """Text a spreadsheet would run as a formula gets a leading apostrophe, so it stays text.

    The data comes from GitHub, that is from anyone who names a repository or writes its
    description; the apostrophe is what spreadsheets themselves use to mark text.
    """
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def _progress(export: Export, written: int) -> None:
    export.rows_written = written
    Export.objects.filter(pk=export.pk).update(rows_written=written, updated_at=timezone.now())
    export_progressed.send(
        sender=Export, export_id=export.pk, rows_written=written, rows_total=export.rows_total
    )


def _save(export: Export, spool: IO[bytes]) -> str:
    storage = export_storage()
    name = f"{export.owner_id}/snapshot-history-{export.pk}.csv"
    # A retry after a failed save may find its own half-written file; the storage would otherwise pick
    # a new name and leave the old one behind.
    if storage.exists(name):
        storage.delete(name)
    return storage.save(name, File(spool, name=name))


def export_kept(*, owner: AbstractBaseUser) -> int:
    """How many finished exports the owner keeps (their files count against EXPORT_MAX_KEPT_PER_USER)."""
    return Export.objects.filter(
        owner=owner, status=Export.Status.DONE, expires_at__gt=timezone.now()
    ).count()


def export_delete(*, owner: AbstractBaseUser, export_id: int) -> bool:
    """Delete one of the owner's finished (or failed) exports and its file; False when there is none.

    An export in flight cannot be deleted: its worker is still writing the file.
    """
    export = Export.objects.filter(owner=owner, pk=export_id).exclude(status__in=Export.IN_FLIGHT).first()
    if export is None:
        return False
    if export.file_name:
        # The file first: a failure between the two leaves a row to delete again, never a lost file.
        export_storage().delete(export.file_name)
    export.delete()
    logger.info("Export %r deleted by its owner.", export_id)
    return True


def export_prune_expired() -> int:
    """Delete expired exports and their files, and give up on stuck ones. Returns exports deleted.

    Safe to run twice: a file already gone is not an error, and a deleted export is not found again.
    """
    now = timezone.now()
    runs_abandon(Export.objects.all(), stale=_stuck(), error=ABANDONED)
    retention = timedelta(hours=settings.EXPORT_RETENTION_HOURS)
    expired = Export.objects.filter(
        Q(expires_at__lt=now) | Q(status=Export.Status.FAILED, finished_at__lt=now - retention)
    )
    deleted = 0
    storage = export_storage()
    for export in expired.iterator():
        if export.file_name:
            # The file first: a crash between the two leaves a row the next prune finds again, never
            # a file nothing points to.
            storage.delete(export.file_name)
        export.delete()
        deleted += 1
    if deleted:
        logger.info("Deleted %d expired export(s).", deleted)
    return deleted


def _stuck() -> Q:
    """Exports whose progress has not moved for EXPORT_STALE_AFTER_MS (it moves with every chunk)."""
    before = timezone.now() - timedelta(milliseconds=settings.EXPORT_STALE_AFTER_MS)
    return Q(updated_at__lt=before) | Q(updated_at__isnull=True, created_at__lt=before)
