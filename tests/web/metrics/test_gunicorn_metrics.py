"""The Procfile's web process, gunicorn with two workers, scraped over HTTP: whichever worker answers
the scrape, it counts the requests every worker answered."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.databases import OwnDatabase
from tests.waiting import wait_until
from tests.web.metrics.conftest import free_port
from tests.web.metrics.scrapes import new_token, parse, value

ROOT = Path(__file__).resolve().parents[3]
#: Requests sent at once, 8 at a time, until both workers have answered some.
BURST = 16


@pytest.fixture
def gunicorn(database: OwnDatabase, tmp_path: Path) -> Iterator[tuple[str, str, Path]]:
    """gunicorn with 2 single-threaded workers on a free port; yields its URL, token and METRICS_DIR."""
    port, token, metrics_dir = free_port(), new_token(), tmp_path / "metrics"
    env = {
        **os.environ,
        "DATABASE_URL": database.url,
        "METRICS_TOKEN": token,
        "METRICS_DIR": str(metrics_dir),
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    with (tmp_path / "gunicorn.log").open("wb") as log:
        process = subprocess.Popen(
            [str(Path(sys.executable).parent / "gunicorn"), "web.wsgi", "--bind", f"127.0.0.1:{port}",
             "--workers", "2", "--threads", "1"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        url = f"http://127.0.0.1:{port}"
        try:
            wait_until(lambda: _answers(url), timeout=60, what="gunicorn to answer")
            yield url, token, metrics_dir
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=30)


def _answers(url: str) -> bool:
    try:
        return _get(url + "/")[0] == 200
    except OSError:
        return False


def _get(url: str, token: str | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status, response.read().decode()


def test_a_scrape_answered_by_either_gunicorn_worker_counts_the_requests_of_both(gunicorn):
    url, token, metrics_dir = gunicorn
    run_directory = next(metrics_dir.iterdir())
    answered = 1  # the readiness check's

    def both_workers_answered() -> bool:
        nonlocal answered
        with ThreadPoolExecutor(max_workers=8) as pool:
            statuses = list(pool.map(lambda _: _get(url + "/")[0], range(BURST)))
        assert statuses == [200] * BURST
        answered += BURST
        return len(list(run_directory.glob("counter_*.db"))) == 2  # one file per worker that counted

    # The second worker may still be loading Django when the first answers.
    wait_until(both_workers_answered, timeout=60, what="both gunicorn workers to answer requests")

    # Each scrape is one request to one worker; the home page's count includes the other's.
    for _ in range(4):
        status, text = _get(url + "/metrics", token)
        assert status == 200
        homes = value(parse(text), "offload_http_requests_total", method="GET", view="home", status="200")
        assert homes == answered
