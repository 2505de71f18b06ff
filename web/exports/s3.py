"""STORAGES["exports"] on S3 (imported by settings, so it must not import Django models)."""

from __future__ import annotations

from typing import Any

from boto3.s3.transfer import TransferConfig


def exports_on_s3(
    *,
    bucket: str,
    prefix: str,
    endpoint_url: str | None,
    region: str,
    addressing_style: str,
    upload_chunks: int,
) -> dict[str, Any]:
    """The STORAGES entry for private export files in an S3 bucket, through django-storages."""
    return {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": bucket,
            "location": prefix,
            # None means AWS itself; the local server (python -m brokers.localsqs) also speaks S3.
            "endpoint_url": endpoint_url,
            "region_name": region,
            "addressing_style": addressing_style,
            "signature_version": "s3v4",
            "default_acl": None,
            "file_overwrite": False,
            "transfer_config": upload_config(chunks=upload_chunks),
        },
    }


def upload_config(*, chunks: int) -> TransferConfig:
    """Upload with at most `chunks` multipart chunks (8 MiB each) in memory and in flight.

    An upload from a file object reads each part into memory; boto3's defaults (10 threads, 10 chunks)
    put a 1M-row export at 220 MB peak RSS, 4 chunks at about 155 MB. boto3's TransferConfig takes no
    argument for the chunk count, but its s3transfer base class reads the attribute.
    """
    config = TransferConfig(max_concurrency=chunks)
    config.max_in_memory_upload_chunks = chunks
    return config
