from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from django.test import Client

from tests.aws_lambda.events import KINDS, host
from tests.web.images.conftest import owner

__all__ = ["owner"]


@pytest.fixture
def lambda_hosts(settings: Any) -> None:
    """The site answers the host names of the samples, as a deployment's ALLOWED_HOSTS lets it."""
    settings.ALLOWED_HOSTS = ["testserver", *(host(kind) for kind in KINDS)]


@pytest.fixture
def s3(sqs_endpoint: str) -> Any:
    """A client of the test server's S3 (the local server speaks S3 as well as SQS)."""
    return boto3.client("s3", endpoint_url=sqs_endpoint, region_name="us-east-1")


@pytest.fixture
def media_bucket(s3: Any, sqs_endpoint: str, namespace: str, settings: Any) -> Iterator[str]:
    """Uploads go to an S3 bucket of this test's own, as MEDIA_S3_BUCKET makes them on Lambda."""
    bucket = f"{namespace}-media"
    s3.create_bucket(Bucket=bucket)
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "storages.backends.s3.S3Storage",
            "OPTIONS": {
                "bucket_name": bucket,
                "location": "media",
                "endpoint_url": sqs_endpoint,
                "region_name": "us-east-1",
                "addressing_style": "path",
                "signature_version": "s3v4",
                "default_acl": None,
            },
        },
    }
    yield bucket
    for item in s3.list_objects_v2(Bucket=bucket).get("Contents", []):
        s3.delete_object(Bucket=bucket, Key=item["Key"])
    s3.delete_bucket(Bucket=bucket)


@pytest.fixture
def session_cookie(owner: Any) -> str:
    """The session cookie of the logged-in owner, to send in events as a browser would."""
    client = Client()
    client.force_login(owner)
    return client.cookies["sessionid"].value
