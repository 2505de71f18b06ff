"""`python -m tests.postgres`, as `make test` runs the suite on PostgreSQL: real servers and processes."""

from __future__ import annotations

import os
import re
import select
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.postgres import PostgresUnavailable, find_bindir, required

ROOT = Path(__file__).resolve().parents[1]

#: What a command sees: the database DATABASE_URL names, reached the way Django reaches it.
CONNECT = """
import os, sys, dj_database_url, psycopg
db = dj_database_url.parse(os.environ["DATABASE_URL"])
with psycopg.connect(host=db["HOST"], user=db["USER"], dbname=db["NAME"]) as connection:
    print("connected to", connection.execute("SELECT current_database()").fetchone()[0], flush=True)
print("socket in", db["HOST"], flush=True)
print("command pid", os.getpid(), flush=True)
"""


@pytest.fixture(scope="module")
def postgres_binaries() -> Path:
    try:
        return find_bindir()
    except PostgresUnavailable as reason:
        if required():
            raise
        pytest.skip(f"No PostgreSQL here: {reason}")


def run_beside_postgres(*command: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tests.postgres", "--", *command],
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def processes_mentioning(text: str) -> list[int]:
    """The pids whose command line names `text` (a server's directory, say)."""
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if text.encode() in (proc / "cmdline").read_bytes():
                    found.append(int(proc.name))
            except OSError:
                continue  # it ended while we looked
    return found


def test_a_command_gets_a_database_of_its_own_and_the_server_is_gone_after_it_failed(postgres_binaries):
    result = run_beside_postgres(sys.executable, "-c", CONNECT + "sys.exit(3)")

    assert result.returncode == 3, result.stderr
    assert "connected to offload" in result.stdout
    socket_dir = re.search(r"socket in (\S+)", result.stdout).group(1)
    server_dir = str(Path(socket_dir).parent)
    assert not Path(server_dir).exists()
    assert processes_mentioning(server_dir) == []


def test_a_killed_run_leaves_no_server_and_no_command_behind(postgres_binaries):
    wrapper = subprocess.Popen(
        [sys.executable, "-m", "tests.postgres", "--", sys.executable, "-c", CONNECT + "sys.stdin.read()"],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    server_dir = ""
    try:
        assert wrapper.stdout is not None
        assert "connected to offload" in wrapper.stdout.readline()
        server_dir = str(Path(wrapper.stdout.readline().split("socket in ")[1].strip()).parent)
        command_pid = int(wrapper.stdout.readline().split("command pid ")[1])
        server_pids = processes_mentioning(server_dir)
        assert server_pids, "the server should be running while the command runs"
        pidfds = {pid: os.pidfd_open(pid) for pid in [*server_pids, command_pid]}

        wrapper.kill()
        wrapper.wait(timeout=10)

        # A pidfd becomes readable when its process has ended: no polling.
        for pid, pidfd in pidfds.items():
            ready, _, _ = select.select([pidfd], [], [], 30)
            os.close(pidfd)
            assert ready, f"process {pid} outlived the run that started it"
        assert processes_mentioning(server_dir) == []
    finally:
        if wrapper.poll() is None:
            wrapper.send_signal(signal.SIGKILL)
            wrapper.wait(timeout=10)
        for stream in (wrapper.stdin, wrapper.stdout):
            if stream:
                stream.close()
        # A run killed outright cannot delete its directory; if this test failed, its server is still up.
        if server_dir:
            for pid in processes_mentioning(server_dir):
                os.kill(pid, signal.SIGKILL)
            shutil.rmtree(server_dir, ignore_errors=True)


def test_without_postgresql_the_run_is_skipped_saying_why_and_the_command_does_not_run(tmp_path):
    marker = tmp_path / "ran"

    result = run_beside_postgres(
        sys.executable,
        "-c",
        f"open({str(marker)!r}, 'w').close()",
        env={"POSTGRES_BINDIR": str(tmp_path), "POSTGRES_REQUIRED": "false"},
    )

    assert result.returncode == 0
    assert f"The PostgreSQL run was SKIPPED: POSTGRES_BINDIR={tmp_path} holds no initdb and postgres." in (
        result.stderr
    )
    assert not marker.exists()


def test_where_postgresql_is_required_its_absence_fails_the_run(tmp_path):
    result = run_beside_postgres(
        sys.executable, "-c", "pass", env={"POSTGRES_BINDIR": str(tmp_path), "POSTGRES_REQUIRED": "true"}
    )

    assert result.returncode == 1
    assert "PostgreSQL is required (POSTGRES_REQUIRED) but POSTGRES_BINDIR=" in result.stderr
