"""What an upload and its thumbnail job cost in memory, each measured in a process of its own.

tests/web/images/peak_memory.py measures (Linux's peak resident set, reset before the work); these
tests hold the figures to budgets well above what was measured and far below what the code cost
before the limits weighed bytes per pixel (the README quotes both).
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image as PILImage

ROOT = Path(__file__).resolve().parents[3]
MIB = 1024 * 1024

pytestmark = pytest.mark.skipif(
    not Path("/proc/self/clear_refs").exists(), reason="measures with Linux's /proc"
)


def _peak(what: str, file: Path, sqs_endpoint: str) -> dict:
    result = subprocess.run(
        [sys.executable, "-m", "tests.web.images.peak_memory", what, str(file)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
        env={**os.environ, "SQS_ENDPOINT_URL": sqs_endpoint, "OUTBOX_SEND_WAIT_MS": "0"},
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def largest_accepted_png(tmp_path_factory) -> Path:
    """8K (7680 x 4320) RGBA, 127 MiB decoded: just under the decoded-memory limit, in a tiny file."""
    path = tmp_path_factory.mktemp("memory") / "8k.png"
    image = PILImage.new("RGBA", (7680, 4320), (10, 200, 30, 128))
    image.paste((200, 10, 30, 255), (0, 0, 3840, 4320))
    image.save(path, "PNG")
    return path


def test_a_tiny_png_of_8000_by_8000_rgba_pixels_is_refused_without_decoding_it(tmp_path, sqs_endpoint):
    path = tmp_path / "huge.png"
    PILImage.new("RGBA", (8000, 8000), (10, 200, 30, 128)).save(path, "PNG")
    assert path.stat().st_size < 300_000

    result = _peak("request", path, sqs_endpoint)

    assert result["status"] == 400
    assert "too large to process" in result["errors"][0]
    assert result["peak_mib"] < 16  # decoding it would take 244 MiB


def test_the_upload_of_the_largest_accepted_image_is_answered_without_decoding_it(
    largest_accepted_png, sqs_endpoint
):
    result = _peak("request", largest_accepted_png, sqs_endpoint)

    assert result["status"] == 302
    assert result["peak_mib"] < 16  # decoding it would take 127 MiB


def test_the_thumbnail_job_for_the_largest_accepted_image_needs_little_more_than_its_pixels(
    largest_accepted_png, sqs_endpoint, settings
):
    result = _peak("thumbnails", largest_accepted_png, sqs_endpoint)

    assert result["status"] == [1024, 512, 128]
    # The decoded image (127 MiB) and its reduced copy (32 MiB); converting or premultiplying the
    # full-size image before reducing it would add at least another 127 MiB.
    assert result["peak_mib"] < 1.4 * settings.IMAGE_MAX_DECODED_BYTES / MIB
