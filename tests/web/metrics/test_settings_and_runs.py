"""The metrics settings refuse what cannot work, and each server run counts in a directory of its own."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from web.metrics.exposition import MULTIPROC_VARIABLE, use_run_directory

ROOT = Path(__file__).resolve().parents[3]


def _check(**env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "web.settings", "ENV_FILE": "", **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    ("env", "line"),
    [
        ({"METRICS_TOKEN": "short"}, "offload: METRICS_TOKEN must be at least 32 characters"),
        (
            {"METRICS_WORKER_PORT": "70000"},
            "offload: METRICS_WORKER_PORT must be a TCP port (1-65535), not 70000.",
        ),
        ({"METRICS_WORKER_PORT": "ninety"}, "offload: METRICS_WORKER_PORT must be an integer, not 'ninety'."),
    ],
    ids=["short token", "port out of range", "port not a number"],
)
def test_a_metrics_setting_that_cannot_work_stops_the_process_with_one_line_naming_it(env, line):
    result = _check(SECRET_KEY="k" * 50, **env)

    assert result.returncode == 4
    assert result.stderr.strip().startswith(line), result.stderr


def test_a_new_run_counts_in_a_new_directory_and_ended_runs_are_removed(tmp_path, monkeypatch):
    monkeypatch.setenv(MULTIPROC_VARIABLE, "")  # restored after the test, whatever the code sets
    ended = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    ended_pid = int(ended.stdout)
    (tmp_path / f"worker-{ended_pid}").mkdir()
    (tmp_path / f"worker-{ended_pid}" / f"counter_{ended_pid}.db").write_bytes(b"old counts")
    (tmp_path / f"web-{ended_pid}").mkdir()  # another kind: its own server cleans it up
    running = tmp_path / f"worker-{os.getppid()}"  # a run whose main process is alive
    running.mkdir()

    directory = use_run_directory(tmp_path, kind="worker", owner=os.getpid())

    assert directory == tmp_path / f"worker-{os.getpid()}"
    assert os.environ[MULTIPROC_VARIABLE] == str(directory)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [f"web-{ended_pid}", running.name, directory.name]
    )
