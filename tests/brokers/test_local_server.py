"""The loopback server `make run` starts makes the bucket large messages go through."""

from __future__ import annotations

import re
import subprocess
import sys

import boto3


def test_the_local_server_creates_the_payload_bucket_it_is_given():
    process = subprocess.Popen(
        [sys.executable, "-m", "brokers.localsqs", "--port", "0", "--bucket", "offload-local-payloads"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = process.stdout.readline() if process.stdout else ""
        match = re.search(r"http://127\.0\.0\.1:\d+", line)
        assert match, line
        s3 = boto3.client("s3", endpoint_url=match.group(0), region_name="us-east-1")
        assert [b["Name"] for b in s3.list_buckets()["Buckets"]] == ["offload-local-payloads"]
    finally:
        process.terminate()
        process.wait(timeout=10)
        if process.stdout:
            process.stdout.close()
