"""A throwaway PostgreSQL server for the test suite, and a command that runs another one beside it.

    python -m tests.postgres -- python -m pytest -q

starts a fresh server (a new data directory in a temporary directory, a Unix socket in it and no TCP
port), runs the command with DATABASE_URL pointing at it, then stops the server and deletes its
directory, whether the command passed, failed or was interrupted. The command's exit status is
returned.

When no server can be had here (no PostgreSQL binaries, or root without an unprivileged user to run
them as) it says why and exits 0 without running the command, so a machine without PostgreSQL still
gets through `make test` on SQLite; with POSTGRES_REQUIRED=true (CI sets it) that is an error instead.

initdb refuses to run as root, so as root the server runs as the `postgres` user that Debian's
package creates. The postmaster is told to shut down, and the command to stop, when this process
dies (Linux's parent-death signal), so not even a SIGKILL leaves them behind.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import os
import pwd
import re
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from urllib.parse import quote

#: The unprivileged user the server runs as when the tests run as root (Debian's package creates it).
SERVER_USER = "postgres"
#: The role and database the suite gets; Django's test runner makes `test_offload` beside it.
DATABASE = "offload"
#: Where Debian installs each major version's server binaries (not on PATH).
DEBIAN_BINDIRS = "/usr/lib/postgresql/*/bin"
#: How long the server may take to accept connections, and to shut down, before we give up on it.
START_TIMEOUT_S = 60
STOP_TIMEOUT_S = 30

#: prctl(2) option: the signal this process gets when its parent dies.
_PR_SET_PDEATHSIG = 1

#: Durability is worth nothing in a database that is deleted at the end of the run.
_SERVER_SETTINGS = {
    "listen_addresses": "",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "200",
    "log_min_messages": "warning",
}


class PostgresUnavailable(Exception):
    """Raised when no PostgreSQL server can be started on this machine; the message says why."""


def find_bindir() -> Path:
    """The directory of initdb and postgres: POSTGRES_BINDIR if set, else PATH, pg_config or Debian's."""
    if configured := os.environ.get("POSTGRES_BINDIR"):
        bindir = Path(configured)
        if (bindir / "initdb").is_file() and (bindir / "postgres").is_file():
            return bindir
        raise PostgresUnavailable(f"POSTGRES_BINDIR={configured} holds no initdb and postgres.")
    candidates: list[Path] = []
    if initdb := shutil.which("initdb"):
        candidates.append(Path(initdb).resolve().parent)
    if pg_config := shutil.which("pg_config"):
        with contextlib.suppress(OSError, subprocess.CalledProcessError):
            bindir = subprocess.run(
                [pg_config, "--bindir"], capture_output=True, text=True, check=True, timeout=10
            ).stdout.strip()
            candidates.append(Path(bindir))
    # The newest major version first: Path("/usr/lib/postgresql/16/bin") sorts before ".../9.6/bin" by number.
    debian = sorted(Path("/").glob(DEBIAN_BINDIRS.lstrip("/")), key=_major_version, reverse=True)
    candidates.extend(debian)
    for bindir in candidates:
        if (bindir / "initdb").is_file() and (bindir / "postgres").is_file():
            return bindir
    looked = ", ".join(str(c) for c in candidates) or "nowhere else"
    raise PostgresUnavailable(
        "no PostgreSQL server binaries (initdb, postgres) were found: looked on PATH, in"
        f" pg_config --bindir and in {DEBIAN_BINDIRS} ({looked}). Install them (Debian: apt-get install"
        " postgresql) or set POSTGRES_BINDIR."
    )


def _major_version(bindir: Path) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", bindir.parent.name)) or (0,)


def _server_account() -> pwd.struct_passwd | None:
    """The account the server runs as: None for the current one, `postgres` when we are root."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(SERVER_USER)
    except KeyError:
        raise PostgresUnavailable(
            f"initdb refuses to run as root, and there is no {SERVER_USER!r} user to run it as."
            f" Create one (useradd --system {SERVER_USER}) or run the tests as an ordinary user."
        ) from None


def _check_reachable(directory: Path, account: pwd.struct_passwd) -> None:
    """The server's user must be able to enter every directory above its own."""
    for path in [directory, *directory.parents]:
        status = path.stat()
        if status.st_uid != account.pw_uid and not status.st_mode & stat.S_IXOTH:
            raise PostgresUnavailable(
                f"the {account.pw_name!r} user the server runs as cannot enter {path}, so it cannot reach"
                f" a data directory in {directory}. Point TMPDIR at a directory it can enter, such as /tmp."
            )


class ThrowawayPostgres:
    """A PostgreSQL server in a temporary directory of its own, for one run; use as a context manager."""

    def __init__(self, bindir: Path | None = None) -> None:
        self.bindir = bindir or find_bindir()
        self.account = _server_account()
        if self.account is not None:
            _check_reachable(Path(tempfile.gettempdir()), self.account)
        self.directory = Path(tempfile.mkdtemp(prefix="offload-postgres-"))
        self.data = self.directory / "data"
        self.socket_dir = self.directory / "socket"
        self.log_path = self.directory / "server.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.version = ""

    @property
    def url(self) -> str:
        """A dj-database-url URL for the suite's database, over the server's Unix socket."""
        return f"postgres://{DATABASE}@{quote(str(self.socket_dir), safe='')}/{DATABASE}"

    def __enter__(self) -> ThrowawayPostgres:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self) -> None:
        self.socket_dir.mkdir()
        if self.account is not None:
            for path in (self.directory, self.socket_dir):
                os.chown(path, self.account.pw_uid, self.account.pw_gid)
        initdb = self._run(
            [
                str(self.bindir / "initdb"),
                f"--pgdata={self.data}",
                f"--username={DATABASE}",
                "--auth=trust",
                "--encoding=UTF8",
                "--no-locale",
                "--no-sync",
            ]
        )
        if initdb.returncode != 0:
            raise PostgresUnavailable(f"initdb failed (exit {initdb.returncode}): {initdb.stdout.strip()}")
        self.version = self._run([str(self.bindir / "postgres"), "--version"]).stdout.strip()
        settings = [f"--{name.replace('_', '-')}={value}" for name, value in _SERVER_SETTINGS.items()]
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [str(self.bindir / "postgres"), "-D", str(self.data), "-k", str(self.socket_dir), *settings],
                stdin=subprocess.DEVNULL,
                cwd=self.directory,  # not the caller's, which the server's user may not be allowed to enter
                stdout=log,
                stderr=subprocess.STDOUT,
                # Its own session: a Ctrl-C meant for the tests does not shut the database down under them.
                start_new_session=True,
                user=self.account.pw_uid if self.account else None,
                group=self.account.pw_gid if self.account else None,
                extra_groups=[] if self.account else None,
                preexec_fn=partial(_signal_when_parent_dies, signal.SIGINT),
            )
        self._wait_until_ready()
        self._create_database()

    def stop(self) -> None:
        """Fast shutdown (clients are disconnected), then the directory goes; safe to call twice."""
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=STOP_TIMEOUT_S)
        shutil.rmtree(self.directory, ignore_errors=True)

    def log_tail(self, lines: int = 20) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def _run(self, command: list[str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=START_TIMEOUT_S,
            check=False,
            cwd=self.directory,
            user=self.account.pw_uid if self.account else None,
            group=self.account.pw_gid if self.account else None,
            extra_groups=[] if self.account else None,
        )

    def _wait_until_ready(self) -> None:
        # The server writes "ready" into postmaster.pid once it accepts connections (pg_ctl -w reads the
        # same line); nothing announces it otherwise, so this looks every 20 ms.
        pid_file = self.data / "postmaster.pid"
        deadline = time.monotonic() + START_TIMEOUT_S
        assert self.process is not None
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise PostgresUnavailable(
                    f"the server exited at start (exit {self.process.returncode}):\n{self.log_tail()}"
                )
            with contextlib.suppress(OSError):
                status = pid_file.read_text().splitlines()
                if len(status) >= 8 and status[7].strip() == "ready":
                    return
            time.sleep(0.02)
        raise PostgresUnavailable(f"the server did not accept connections within {START_TIMEOUT_S} s.")

    def _create_database(self) -> None:
        import psycopg

        with psycopg.connect(
            host=str(self.socket_dir), user=DATABASE, dbname="postgres", autocommit=True
        ) as connection:
            connection.execute(f'CREATE DATABASE "{DATABASE}"')


def _signal_when_parent_dies(signum: int) -> None:
    """Run in a child before exec: it gets `signum` when this process dies, however it dies (Linux only)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signum)


def required() -> bool:
    """POSTGRES_REQUIRED=true makes a missing server an error rather than a skipped run."""
    return os.environ.get("POSTGRES_REQUIRED", "").strip().lower() in {"1", "true", "yes", "on"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.postgres",
        description="Run a command with DATABASE_URL set to a throwaway PostgreSQL server.",
    )
    parser.add_argument("command", nargs=argparse.REMAINDER, help="the command to run, after --")
    command = parser.parse_args(argv).command
    if command[:1] == ["--"]:
        command = command[1:]
    if not command:
        parser.error("name a command to run, e.g. -- python -m pytest")

    with contextlib.ExitStack() as stack:
        try:
            server = stack.enter_context(ThrowawayPostgres())
        except PostgresUnavailable as reason:
            if required():
                print(f"PostgreSQL is required (POSTGRES_REQUIRED) but {reason}", file=sys.stderr)
                return 1
            print(f"\n*** The PostgreSQL run was SKIPPED: {reason} ***\n", file=sys.stderr)
            return 0
        print(f"{server.version}: a throwaway server in {server.directory}", file=sys.stderr, flush=True)
        child = subprocess.Popen(
            command,
            env={**os.environ, "DATABASE_URL": server.url},
            preexec_fn=partial(_signal_when_parent_dies, signal.SIGTERM),
        )
        with _forwarding_signals_to(child):
            return child.wait()


@contextlib.contextmanager
def _forwarding_signals_to(child: subprocess.Popen[bytes]) -> Iterator[None]:
    """SIGTERM goes on to the command, and we wait for it to end before stopping the server.

    A Ctrl-C reaches the command from the terminal itself (one process group): forwarding it too would
    interrupt the command's own clean-up, so this process only waits.
    """

    def forward(signum: int, frame: object) -> None:
        with contextlib.suppress(ProcessLookupError):
            child.send_signal(signum)

    previous = {signal.SIGTERM: signal.signal(signal.SIGTERM, forward)}
    previous[signal.SIGINT] = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


if __name__ == "__main__":
    sys.exit(main())
