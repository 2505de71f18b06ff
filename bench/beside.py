"""The benchmarks run beside the broker's in `make bench`: the Lambda worker and the site under load.

Each runs after the broker's rounds, once LocalStack has stopped, in a process of its own (the
project's virtualenv: Django, gunicorn, Locust), and brings its own servers on loopback. A failure
of one is reported in the results (its keys null, the error kept) and never loses the rest.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
#: The project's own virtualenv (`make bench` makes it): the harness itself runs in the peers' one.
PROJECT_PYTHON = ROOT / ".venv" / "bin" / "python"
#: The keys each benchmark adds to latest.json (the rest of what it returns goes to latest-details.json).
LATEST_KEYS = {
    "lambda": ("lambda_cold_start_ms", "lambda_records_per_s", "worker_records_per_s"),
    "site": (
        "site_upload_p99_ms_idle",
        "site_upload_p99_ms_loaded",
        "site_requests_per_s",
        "site_thumbnails_per_s",
        "site_page_p99_ms_browsing",
        "site_page_p99_ms_login_burst",
    ),
}
#: Either benchmark is stopped after this long (a hung server must not hang `make bench`).
TIMEOUT_S = 1800


def run(names: list[str], *, records: int = 1000, runs: int = 5, loaded_s: float = 60) -> dict[str, Any]:
    """Run the named benchmarks one after the other; returns their figures, flat, plus `beside`:
    per benchmark its wall time and, when it failed, the error."""
    figures: dict[str, Any] = {}
    report: dict[str, Any] = {}
    python = str(PROJECT_PYTHON if PROJECT_PYTHON.exists() else Path(sys.executable))
    todo = {
        "lambda": [python, "-m", "bench.lambda_worker", "--records", str(records), "--runs", str(runs)],
        "site": [python, "-m", "bench.site", "--quiet", "--loaded-s", str(loaded_s)],
    }
    for name in names:
        for key in LATEST_KEYS[name]:
            figures[key] = None
        began = time.monotonic()
        print(f"bench: {name} benchmark", flush=True)
        with tempfile.TemporaryDirectory() as scratch:
            out = Path(scratch) / f"{name}.json"
            try:
                subprocess.run([*todo[name], "--json", str(out)], cwd=ROOT, check=True, timeout=TIMEOUT_S)
                figures.update(json.loads(out.read_text()))
                report[name] = {"wall_s": time.monotonic() - began}
            except (subprocess.SubprocessError, OSError, ValueError) as e:
                print(f"bench: the {name} benchmark failed: {e}", flush=True)
                report[name] = {"wall_s": time.monotonic() - began, "error": str(e)}
    figures["beside"] = report
    return figures


def latest_keys(figures: dict[str, Any]) -> dict[str, Any]:
    """What of `figures` goes into latest.json: the listed keys of the benchmarks that ran."""
    ran = figures.get("beside", {})
    return {key: figures.get(key) for name in ran for key in LATEST_KEYS[name]}
