"""Export storage for the tests: a private temporary directory, or a fresh bucket on the local S3 server."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from django.utils import timezone

from web.exports.models import Export
from web.exports.s3 import exports_on_s3


@pytest.fixture(autouse=True)
def local_export_storage(export_dir: Path) -> Path:
    """Exports go to this test's own directory (tests that want S3 switch again)."""
    return export_dir


@pytest.fixture
def s3_bucket(sqs_endpoint: str) -> Iterator[tuple[Any, str]]:
    """(client, bucket): a bucket of this test's own on the local server, which speaks S3 as well as SQS."""
    client = boto3.client("s3", endpoint_url=sqs_endpoint, region_name="us-east-1")
    bucket = f"exports-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=bucket)
    yield client, bucket
    client.close()


def exports_to_s3(settings: Any, bucket: str, endpoint_url: str) -> None:
    """Exports go to S3 through django-storages, configured as settings.py does for EXPORTS_S3_BUCKET."""
    settings.STORAGES = {
        **settings.STORAGES,
        "exports": exports_on_s3(
            bucket=bucket,
            prefix="exports",
            endpoint_url=endpoint_url,
            region="us-east-1",
            addressing_style="path",
            upload_chunks=4,
        ),
    }


@pytest.fixture
def s3_export_storage(settings: Any, sqs_endpoint: str, s3_bucket: tuple[Any, str]) -> tuple[Any, str]:
    """Exports go to a bucket of this test's own on the local S3 server."""
    exports_to_s3(settings, s3_bucket[1], sqs_endpoint)
    return s3_bucket


@pytest.fixture
def user(django_user_model: Any) -> Any:
    return make_user(django_user_model)


@pytest.fixture
def other_user(django_user_model: Any) -> Any:
    return make_user(django_user_model)


def make_user(model: Any) -> Any:
    name = f"u{uuid.uuid4().hex[:8]}"
    return model.objects.create_user(username=name, email=f"{name}@example.com", password="pw-123456!")


def finished_export(owner: Any, export_dir: Path, *, expires_in: timedelta = timedelta(days=1)) -> Export:
    """A finished export of `owner` and its file in export_dir, expiring after `expires_in`."""
    now = timezone.now()
    export = Export.objects.create(
        owner=owner,
        created_at=now - timedelta(days=8),
        finished_at=now - timedelta(days=7),
        expires_at=now + expires_in,
        status=Export.Status.DONE,
        file_name=f"{owner.pk}/snapshot-history-{uuid.uuid4().hex[:6]}.csv",
    )
    path = export_dir / export.file_name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("poll_id\n1\n", encoding="utf-8")
    return export
