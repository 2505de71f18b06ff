from __future__ import annotations

import csv
import uuid
from pathlib import Path

import boto3
import pytest
from botocore.exceptions import ClientError
from django.dispatch import receiver
from django.utils import timezone

from tasks.export_csv import export_csv
from web.exports.models import Export
from web.exports.services import export_write
from web.exports.signals import export_progressed
from web.reports.demo_data import demo_history_create
from web.trending.models import Poll, RepositorySnapshot

pytestmark = pytest.mark.usefixtures("export_dir")


@pytest.fixture
def export(django_user_model) -> Export:
    name = f"u{uuid.uuid4().hex[:8]}"
    owner = django_user_model.objects.create_user(username=name, password="pw-123456!")
    return Export.objects.create(owner=owner, created_at=timezone.now())


def written_files(directory: Path) -> list[Path]:
    return sorted(path for path in directory.rglob("*") if path.is_file())


@pytest.mark.django_db(transaction=True)
def test_an_export_delivered_twice_writes_one_file_once(broker, worker, export, export_dir):
    demo_history_create(polls=2, end=timezone.now())
    message = export_csv.message(export_id=export.pk)

    broker.enqueue(message)
    broker.enqueue(message)
    broker.join(export_csv.queue_name, timeout=30_000)

    export.refresh_from_db()
    assert export.status == Export.Status.DONE
    assert export.attempts == 1
    files = written_files(export_dir)
    assert files == [export_dir / export.file_name]
    with files[0].open(encoding="utf-8", newline="") as f:
        assert sum(1 for _ in csv.reader(f)) == 1 + 200


@pytest.mark.django_db
def test_writing_a_finished_export_again_does_nothing(export, export_dir):
    demo_history_create(polls=1, end=timezone.now())

    first = export_write(export_id=export.pk)
    second = export_write(export_id=export.pk)

    assert first is not None
    assert second is None
    assert len(written_files(export_dir)) == 1


@pytest.mark.django_db
def test_progress_is_saved_after_every_chunk_and_the_file_is_complete_at_the_end(export, settings):
    settings.EXPORT_CHUNK_ROWS = 100
    demo_history_create(polls=3, end=timezone.now())
    seen: list[tuple[int, int, int]] = []

    @receiver(export_progressed)
    def record(*, export_id: int, rows_written: int, rows_total: int, **kwargs) -> None:
        stored = Export.objects.get(pk=export_id)
        seen.append((rows_written, stored.rows_written, stored.percent))

    try:
        export_write(export_id=export.pk)
    finally:
        export_progressed.disconnect(record)

    assert seen == [(100, 100, 33), (200, 200, 66), (300, 300, 100)]
    export.refresh_from_db()
    assert export.rows_written == export.rows_total == 300
    assert export.expires_at > export.finished_at


@pytest.mark.django_db
def test_a_failed_upload_marks_the_export_failed_and_a_retry_finishes_it(export, settings, sqs_endpoint):
    bucket = f"missing-{uuid.uuid4().hex[:12]}"
    settings.STORAGES = {
        **settings.STORAGES,
        "exports": {
            "BACKEND": "storages.backends.s3.S3Storage",
            "OPTIONS": {
                "bucket_name": bucket,
                "endpoint_url": sqs_endpoint,
                "region_name": "us-east-1",
                "addressing_style": "path",
            },
        },
    }
    demo_history_create(polls=1, end=timezone.now())

    with pytest.raises(ClientError):
        export_write(export_id=export.pk)
    export.refresh_from_db()
    assert export.status == Export.Status.FAILED
    assert "NoSuchBucket" in export.error

    s3 = boto3.client("s3", endpoint_url=sqs_endpoint, region_name="us-east-1")
    s3.create_bucket(Bucket=bucket)
    assert export_write(export_id=export.pk) is not None
    export.refresh_from_db()
    assert export.status == Export.Status.DONE
    assert export.attempts == 2
    assert s3.head_object(Bucket=bucket, Key=export.file_name)["ContentLength"] == export.size_bytes
    s3.close()


@pytest.mark.django_db
def test_text_a_spreadsheet_would_run_as_a_formula_is_written_as_text(export, export_dir):
    poll = Poll.objects.create(started_at=timezone.now(), status=Poll.Status.CHANGED)
    hostile = ['=HYPERLINK("http://x")', "+1+1", "-2+3", "@SUM(A1)", "\tcmd", "\rcmd"]
    for rank, text in enumerate(hostile, start=1):
        RepositorySnapshot.objects.create(
            poll=poll,
            fetched_at=timezone.now(),
            rank=rank,
            github_id=rank,
            full_name=f"owner/repo-{rank}",
            html_url=f"https://github.com/owner/repo-{rank}",
            description=text,
            language=text,
            stars=10,
            forks=1,
        )

    export = export_write(export_id=export.pk)

    with (export_dir / export.file_name).open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [row["description"] for row in rows] == ["'" + text for text in hostile]
    assert [row["language"] for row in rows] == ["'" + text for text in hostile]
    assert [row["full_name"] for row in rows] == [f"owner/repo-{rank}" for rank in range(1, 7)]
    assert {row["stars"] for row in rows} == {"10"}
