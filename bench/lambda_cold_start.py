"""Cold start of the Lambda handlers, from the built package, each in a fresh interpreter.

    make lambda-package && .venv/bin/python -m bench.lambda_cold_start [--runs 5]

Unzips build/lambda/offload-lambda.zip, starts the local SQS/S3 server, migrates a SQLite database,
then for each handler starts a bare Python (no site-packages: only the package and the standard
library, as on Lambda) that imports web.aws_lambda and answers one event, then a second. Prints, per
handler, the median (min-max) of: the import (Lambda's init phase), the first answer, import to first
answer, and a warm answer. The events are the test suite's samples: a function URL GET of the home
page, and EventBridge Scheduler's every-minute call.

Local figures on this machine, not Lambda's: they show what the package costs, not what AWS adds.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

import boto3

from tests.conftest import running_local_sqs

ROOT = Path(__file__).resolve().parent.parent
ARCHIVE = ROOT / "build" / "lambda" / "offload-lambda.zip"
SAMPLES = ROOT / "tests" / "aws_lambda" / "events"
NAMESPACE = "coldstart"

_PROBE = """
import json, sys, time
started = time.perf_counter()
sys.path.insert(0, sys.argv[1])
import web.aws_lambda as module
imported = time.perf_counter()
handler = getattr(module, sys.argv[2])
event = json.loads(sys.argv[3])

class Context:
    function_name = "coldstart"
    aws_request_id = "coldstart"
    def get_remaining_time_in_millis(self):
        return 30_000

first = handler(event, Context())
answered = time.perf_counter()
handler(event, Context())
warm = time.perf_counter()
status = first.get("statusCode", 200)
failed = len(first.get("batchItemFailures") or [])
print(json.dumps({"import": imported - started, "first": answered - imported,
                  "cold": answered - started, "warm": warm - answered, "status": status, "failed": failed}))
"""


def bare_python() -> str:
    """This Python's interpreter outside any virtualenv (the package brings every dependency)."""
    candidate = Path(sys.base_prefix) / "bin" / f"python{sys.version_info.major}.{sys.version_info.minor}"
    return str(candidate if candidate.exists() else sys.executable)


def measure(package: Path, env: dict[str, str], handler: str, event: dict, runs: int) -> dict[str, list]:
    figures: dict[str, list] = {"import": [], "first": [], "cold": [], "warm": []}
    migrated = Path(env["DATABASE_URL"].removeprefix("sqlite:///"))
    for number in range(runs):
        # Each run on a fresh copy of the migrated database: the first answer does the first run's work.
        database = migrated.with_name(f"{handler}-{number}.sqlite3")
        shutil.copyfile(migrated, database)
        run = subprocess.run(
            [bare_python(), "-I", "-S", "-c", _PROBE, str(package), handler, json.dumps(event)],
            env={**env, "DATABASE_URL": f"sqlite:///{database}"},
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
        if run.returncode != 0:
            raise SystemExit(f"{handler} failed:\n{run.stderr}")
        result = json.loads(run.stdout.strip().splitlines()[-1])
        if result["status"] >= 400 or result["failed"]:
            raise SystemExit(
                f"{handler} answered {result['status']}, {result['failed']} failed:\n{run.stderr}"
            )
        for key in figures:
            figures[key].append(result[key] * 1000)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description="Cold start of the Lambda handlers from the built package.")
    parser.add_argument("--runs", type=int, default=5)
    options = parser.parse_args()
    if not ARCHIVE.exists():
        raise SystemExit(f"No package at {ARCHIVE.relative_to(ROOT)}: run make lambda-package first.")
    with deployment() as (package, env, _):
        events = {
            "web_handler": json.loads((SAMPLES / "function_url.json").read_text()),
            "scheduler_handler": json.loads((SAMPLES / "scheduler.json").read_text()),
        }
        sys.stdout.write(
            f"{ARCHIVE.stat().st_size / 2**20:.1f} MB zipped, {_size(package) / 2**20:.1f} MB unzipped\n"
        )
        for handler, event in events.items():
            figures = measure(package, env, handler, event, options.runs)
            line = ", ".join(f"{key} {_summary(values)}" for key, values in figures.items())
            sys.stdout.write(f"{handler} ({options.runs} runs, ms): {line}\n")


@contextlib.contextmanager
def deployment() -> Iterator[tuple[Path, dict[str, str], str]]:
    """The unzipped package, the environment its functions get, and the local SQS/S3 endpoint.

    The queues and the media bucket exist (the functions may not create queues), and the SQLite
    database is migrated; all of it is gone when the block ends.
    """
    with tempfile.TemporaryDirectory() as work, running_local_sqs() as endpoint:
        package = Path(work) / "task"
        with zipfile.ZipFile(ARCHIVE) as zipped:
            zipped.extractall(package)
        credentials = {"AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local"}
        sqs = boto3.client("sqs", endpoint_url=endpoint, region_name="us-east-1", **_lower(credentials))
        for name in (f"{NAMESPACE}-default-dlq", f"{NAMESPACE}-default"):
            sqs.create_queue(QueueName=name)
        s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", **_lower(credentials))
        s3.create_bucket(Bucket="coldstart-media")
        env = {
            "PATH": os.environ.get("PATH", ""),
            **credentials,
            "AWS_REGION": "us-east-1",
            "DEBUG": "false",
            "SECRET_KEY": "cold-start-measurement-" + "k" * 40,
            "ALLOWED_HOSTS": ".lambda-url.eu-west-1.on.aws",
            "DATABASE_URL": f"sqlite:///{Path(work) / 'db.sqlite3'}",
            "SQS_ENDPOINT_URL": endpoint,
            "SQS_NAMESPACE": NAMESPACE,
            "SQS_CREATE_QUEUES": "false",
            "MEDIA_S3_BUCKET": "coldstart-media",
            "MEDIA_S3_ENDPOINT_URL": endpoint,
        }
        subprocess.run(
            [sys.executable, "manage.py", "migrate", "--noinput", "-v0"], cwd=package, env=env, check=True
        )
        yield package, env, endpoint


def _lower(credentials: dict[str, str]) -> dict[str, str]:
    return {key.lower(): value for key, value in credentials.items()}


def _size(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


def _summary(values: list[float]) -> str:
    return f"{statistics.median(values):.0f} ({min(values):.0f}-{max(values):.0f})"


if __name__ == "__main__":
    main()
