"""Peak memory of one upload request or one thumbnail job, measured in a process of its own.

    python -m tests.web.images.peak_memory request FILE      # the upload, through Django's full stack
    python -m tests.web.images.peak_memory thumbnails FILE   # the job's work: render every thumbnail

Prints one JSON line: {"peak_mib": ..., "status": ...}. The peak is Linux's VmHWM (the process's
highest resident set size), reset just before the work by writing 5 to /proc/self/clear_refs, minus
the resident set at that moment: what the work added at its worst, with everything it imports and
the database already warm. For the request, one small upload runs first to warm every code path.
"""

from __future__ import annotations

import io
import json
import os
import re
import sys
import tempfile
from pathlib import Path


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} is not in /proc/self/status")


class _Peak:
    """Measures the peak resident memory the code in its block adds."""

    def __enter__(self) -> _Peak:
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current VmRSS
        self.start_kib = _status_kib("VmRSS")
        return self

    def __exit__(self, *exc: object) -> None:
        self.peak_mib = (_status_kib("VmHWM") - self.start_kib) / 1024


def _thumbnails(path: Path) -> dict[str, object]:
    from web.images.thumbnails import render_thumbnails

    render_thumbnails(io.BytesIO(_tiny_png()))  # imports and first-use allocations
    with _Peak() as peak, path.open("rb") as source:
        rendered = render_thumbnails(source)
    return {"peak_mib": round(peak.peak_mib, 1), "status": [r.size for r in rendered]}


def _request(path: Path) -> dict[str, object]:
    workdir = Path(tempfile.mkdtemp())
    os.environ["DATABASE_URL"] = f"sqlite:///{workdir / 'db.sqlite3'}"
    os.environ["MEDIA_ROOT"] = str(workdir / "media")
    os.environ["ALLOWED_HOSTS"] = "testserver"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.files.uploadedfile import SimpleUploadedFile
    from django.core.management import call_command
    from django.test import Client

    call_command("migrate", verbosity=0)
    user = get_user_model().objects.create_user("m@example.com", "m@example.com", "irrelevant")
    client = Client()
    client.force_login(user)
    client.post("/images/", {"image": SimpleUploadedFile("warm.png", _tiny_png(), "image/png")})
    # The body is streamed from a file, as a server reads it from the socket: the test client would
    # otherwise build the whole request in memory and count it against the request.
    boundary = "offload-peak-memory"
    body = workdir / "body"
    with body.open("wb") as out, path.open("rb") as source:
        out.write(
            f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="{path.name}"\r\n'
            f"Content-Type: application/octet-stream\r\n\r\n".encode()
        )
        while chunk := source.read(1 << 20):
            out.write(chunk)
        out.write(f"\r\n--{boundary}--\r\n".encode())
    with _Peak() as peak, body.open("rb") as stream:
        response = client.generic(
            "POST",
            "/images/",
            CONTENT_TYPE=f"multipart/form-data; boundary={boundary}",
            CONTENT_LENGTH=str(body.stat().st_size),
            **{"wsgi.input": stream},
        )
    errors = re.findall(r"<ul class=\"errorlist[^>]*>(.*?)</ul>", response.content.decode(), re.S)
    return {"peak_mib": round(peak.peak_mib, 1), "status": response.status_code, "errors": errors}


def _tiny_png() -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGBA", (64, 64), (1, 2, 3, 4)).save(buffer, "PNG")
    return buffer.getvalue()


if __name__ == "__main__":
    what, file = sys.argv[1], Path(sys.argv[2])
    result = _thumbnails(file) if what == "thumbnails" else _request(file)
    print(json.dumps(result))
