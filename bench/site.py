"""The site under load: gunicorn and a worker, driven by Locust, idle against loaded, and a log-in burst.

    .venv/bin/python -m bench.site                 # about 5 minutes; prints the table
    .venv/bin/python -m bench.site --json out.json # also the figures, as JSON (make bench reads them)

Everything runs on loopback ports chosen free, from the project's virtualenv: the local SQS server
(`python -m brokers.localsqs`), a throwaway PostgreSQL (tests/postgres.py; SQLite with `--database
sqlite` or where PostgreSQL cannot run), gunicorn with gunicorn.conf.py (2 processes x 16 threads), one
worker (`manage.py rundramatiq`, 1 process x 4 threads, as `make run` has it), and Locust headless
(bench/locustfile.py). The settings are production's (DEBUG off, static files from WhiteNoise) but
for plain HTTP on loopback and a sign-up limit per client address that one load generator cannot hit.

Phases, one after the other, each a Locust run of its own:
1. warm-up: one visitor for a few seconds, not counted (each process's first requests import code).
2. idle: one visitor alone: upload, sign up, /trending/, /reports/, home, in turn, then a 0.5 s pause.
3. loaded: 20 users for a fixed time: 4 uploading the 6 MB photo, 2 signing up, 14 reading, each
   pausing 0.5-1.5 s between requests. Then the worker's backlog is left to drain; the thumbnail
   figures are those of the images uploaded in this phase.
4. log-in burst: 8 readers browse while, three times, 20 people log in at the same instant. A page
   view counts as "during a burst" when it overlaps one (from the first press to the last answer).

The JSON's keys: site_upload_p50_ms_idle / _loaded, site_upload_p99_ms_idle / _loaded,
site_requests_per_s (loaded), site_thumbnails_per_s, site_page_p99_ms_browsing and
site_page_p99_ms_login_burst (the reading pages without and during a burst), site_login_p99_ms_burst,
and site_details (every page's figures per phase, the setup, the machine's load). `make bench` runs
it after the broker's rounds (bench/beside.py).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench.common import percentile

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
#: The project's own virtualenv (make test and make bench create it): Django, gunicorn, Locust.
PROJECT_PYTHON = ROOT / ".venv" / "bin" / "python"
#: The pages a reader reads: the ones compared with and without a log-in burst.
READ_PAGES = ("/trending/", "/reports/", "/ (home)")
#: gunicorn as the Procfile runs it on a small dyno: 2 processes of 16 threads, more threads than a
#: burst of log-ins can hold while they wait their turn to hash (PASSWORD_HASHES_AT_ONCE).
WEB_PROCESSES, WEB_THREADS = 2, 16
#: The worker as `make run` starts it.
WORKER_PROCESSES, WORKER_THREADS = 1, 4
#: Users in the loaded phase (Uploader and SignUp take their fixed counts, Reader the rest).
LOADED_USERS = 20
#: Readers browsing through the log-in bursts (one more Locust user runs the bursts).
BURST_READERS = 8
#: Log-in bursts, the first after BURST_FIRST_S seconds, then every BURST_EVERY_S.
BURSTS, BURST_FIRST_S, BURST_EVERY_S = 3, 8.0, 10.0
#: How long the worker may take to make the loaded phase's thumbnails before the figures are taken.
DRAIN_TIMEOUT_S = 120
#: gunicorn and the worker start within this long, or something is wrong.
START_TIMEOUT_S = 60


def run(
    *, idle_s: float, loaded_s: float, database: str, work: Path, web_threads: int = WEB_THREADS
) -> dict[str, Any]:
    from tests.conftest import running_local_sqs

    load_before = os.getloadavg()
    (work / "logs").mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as stack:
        database_url, database = stack.enter_context(_database(database, work))
        endpoint = stack.enter_context(running_local_sqs())
        # Uploads take 6 MB each: only the logs and Locust's CSV files are kept.
        stack.callback(shutil.rmtree, work / "media", ignore_errors=True)
        site = _Site(work, _environment(work, database_url, endpoint), web_threads)
        stack.callback(site.stop)
        photo = BENCH / ".work" / "site-photo.jpg"
        site.python("bench.site_setup", "photo", str(photo))
        site.python("bench.site_setup", "prepare")
        site.start()
        site.locust("warm-up", ["Visitor"], users=1, seconds=5, photo=photo)
        idle = site.locust("idle", ["Visitor"], users=1, seconds=idle_s, photo=photo)
        site.drained()
        loaded = site.locust(
            "loaded", ["Uploader", "SignUp", "Reader"], users=LOADED_USERS, seconds=loaded_s, photo=photo
        )
        drain = site.drained()
        thumbnails = json.loads(site.python("bench.site_setup", "thumbnails", *map(str, loaded["window"])))
        # One more interval after the last burst: a burst on a busy machine can take most of one.
        burst_s = BURST_FIRST_S + (BURSTS + 1) * BURST_EVERY_S
        burst = site.locust(
            "log-in burst", ["Reader", "LogInBurst"], users=BURST_READERS + 1, seconds=burst_s
        )
    setup = {
        "database": database,
        "web": f"gunicorn {WEB_PROCESSES} processes x {web_threads} threads",
        "worker": f"rundramatiq {WORKER_PROCESSES} process x {WORKER_THREADS} threads",
        "password_hashes_at_once": site.env.get("PASSWORD_HASHES_AT_ONCE", "default"),
        "loaded_users": LOADED_USERS,
        "burst_readers": BURST_READERS,
    }
    return _figures(idle, loaded, burst, thumbnails, drain, setup, load_before)


class _Site:
    """The site's processes for one run, all on loopback, all stopped by stop()."""

    def __init__(self, work: Path, env: dict[str, str], web_threads: int) -> None:
        self.work, self.env, self.web_threads = work, env, web_threads
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.processes: list[subprocess.Popen[bytes]] = []

    def python(self, *args: str) -> str:
        """Run a module or manage.py command with the site's settings; its stdout."""
        done = subprocess.run(
            [str(PROJECT_PYTHON), "-m", *args], cwd=ROOT, env=self.env, capture_output=True, check=False
        )
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(args)} failed:\n{done.stderr.decode(errors='replace')[-3000:]}")
        return done.stdout.decode()

    def start(self) -> None:
        worker = ["manage.py", "rundramatiq", "--processes", str(WORKER_PROCESSES)]
        self._spawn("worker", [*worker, "--threads", str(WORKER_THREADS)])
        web = [
            "-m",
            "gunicorn",
            "web.wsgi",
            "--config",
            "gunicorn.conf.py",
            "--bind",
            f"127.0.0.1:{self.port}",
            # The server's own view of each request (process, status, microseconds), beside Locust's.
            "--access-logfile",
            str(self.work / "logs" / "access.log"),
            "--access-logformat",
            '%(p)s "%(r)s" %(s)s %(D)s',
            *_no_control_socket(),
        ]
        self._spawn("web", [*web, "--workers", str(WEB_PROCESSES), "--threads", str(self.web_threads)])
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            with contextlib.suppress(OSError), urllib.request.urlopen(self.url + "/", timeout=5) as answer:
                if answer.status == 200:
                    return
            if time.monotonic() > deadline or any(p.poll() is not None for p in self.processes):
                raise RuntimeError(f"The site did not start; see {self.work / 'logs'}.")
            time.sleep(0.2)  # nothing announces that gunicorn's workers are ready but an answer

    def locust(
        self, phase: str, users_of: list[str], *, users: int, seconds: float, photo: Path | None = None
    ) -> dict[str, Any]:
        """One headless Locust run; its samples, bursts and time window."""
        name = phase.replace(" ", "-")
        samples = self.work / f"{name}-samples.json"
        command = [str(PROJECT_PYTHON), "-m", "locust", "-f", str(BENCH / "locustfile.py"), "--headless"]
        command += ["--host", self.url, "-u", str(users), "-r", str(users), "-t", f"{seconds:g}s"]
        command += ["--csv", str(self.work / name), "--only-summary", "--loglevel", "WARNING"]
        command += ["--samples", str(samples), "--photo", str(photo or ""), "--bursts", str(BURSTS)]
        command += ["--burst-first-s", str(BURST_FIRST_S), "--burst-every-s", str(BURST_EVERY_S)]
        began = time.time()
        with open(self.work / "logs" / f"{name}-locust.log", "wb") as log:
            # Locust's exit status is 1 when any request failed; the failures are counted in the figures.
            subprocess.run([*command, *users_of], cwd=ROOT, env=self.env, stdout=log, stderr=log, check=False)
        if not samples.exists():
            raise RuntimeError(f"Locust wrote no samples in the {phase} phase; see {log.name}.")
        result = json.loads(samples.read_text())
        result["window"] = (began, time.time())
        return result

    def drained(self) -> dict[str, Any]:
        return json.loads(self.python("bench.site_setup", "drained", str(DRAIN_TIMEOUT_S)))

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()

    def _spawn(self, name: str, args: list[str]) -> None:
        with open(self.work / "logs" / f"{name}.log", "wb") as log:
            self.processes.append(
                subprocess.Popen(
                    [str(PROJECT_PYTHON), *args],
                    cwd=ROOT,
                    env=self.env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # its own group: stop() ends gunicorn's and dramatiq's children
                )
            )


@contextlib.contextmanager
def _database(wanted: str, work: Path) -> Iterator[tuple[str, str]]:
    """(DATABASE_URL, what it is): a throwaway PostgreSQL server, or a SQLite file in `work`."""
    if wanted == "postgres":
        from tests.postgres import PostgresUnavailable, ThrowawayPostgres

        try:
            server = ThrowawayPostgres()
            server.start()
        except PostgresUnavailable as reason:
            print(f"bench.site: no PostgreSQL here ({reason}); SQLite instead.", file=sys.stderr)
        else:
            try:
                yield server.url, server.version or "PostgreSQL"
            finally:
                server.stop()
            return
    yield f"sqlite:///{work / 'db.sqlite3'}", "SQLite (WAL)"


def _environment(work: Path, database_url: str, endpoint: str) -> dict[str, str]:
    inherited = {k: v for k, v in os.environ.items() if not k.startswith(("SMTP_", "MEDIA_S3", "EXPORTS_S3"))}
    return {
        **inherited,
        "PYTHONPATH": str(ROOT),
        "ENV_FILE": "",  # never a developer's .env
        "SECRET_KEY": secrets.token_urlsafe(50),
        "DEBUG": "false",
        "ALLOWED_HOSTS": "127.0.0.1",
        # Plain HTTP on loopback: no redirect to HTTPS, cookies that travel over HTTP.
        "SECURE_SSL_REDIRECT": "false",
        "SECURE_COOKIES": "false",
        "SECURE_HSTS_SECONDS": "0",
        # Every sign-up comes from one address here; the limit is for one person, not a load generator.
        "RATE_LIMIT_SIGNUP_MAILS_PER_IP": "1000000/hour",
        "DATABASE_URL": database_url,
        "MEDIA_ROOT": str(work / "media"),
        "SQS_ENDPOINT_URL": endpoint,
        "SQS_NAMESPACE": f"sitebench-{work.name}",
        "AWS_ACCESS_KEY_ID": "local",
        "AWS_SECRET_ACCESS_KEY": "local",
        "LOG_LEVEL": "WARNING",
    }


def _no_control_socket() -> list[str]:
    """gunicorn 25+ opens a control socket at one path in the home directory; the bench needs none,
    and two gunicorns on one machine (a bench beside `make run`) would fight over it."""
    import gunicorn

    return ["--no-control-socket"] if gunicorn.version_info >= (25,) else []


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- figures ------------------------------------------------------------------------------------
Sample = tuple[str, float, float, bool]  # name, start (epoch s), duration (ms), ok


def _pages(samples: list[Sample]) -> dict[str, dict[str, Any]]:
    """Per request name: count, failures, p50 and p99 in ms (successful requests only)."""
    names = sorted({sample[0] for sample in samples})
    figures = {}
    for name in names:
        times = [ms for n, _, ms, ok in samples if n == name and ok]
        figures[name] = {
            "count": sum(1 for n, *_ in samples if n == name),
            "failures": sum(1 for n, _, _, ok in samples if n == name and not ok),
            "p50_ms": _round(percentile(times, 50)),
            "p99_ms": _round(percentile(times, 99)),
        }
    return figures


def _per_second(samples: list[Sample]) -> float:
    if len(samples) < 2:
        return 0.0
    first = min(start for _, start, _, _ in samples)
    last = max(start + ms / 1000 for _, start, ms, _ in samples)
    return round(len(samples) / (last - first), 1)


def _burst_split(burst: dict[str, Any]) -> tuple[list[float], list[float], list[float]]:
    """Reading pages' times (ms) without and during a burst, and the burst's own log-ins."""
    windows = burst["bursts"]
    quiet: list[float] = []
    during: list[float] = []
    for name, start, ms, ok in burst["samples"]:
        if name not in READ_PAGES or not ok:
            continue
        end = start + ms / 1000
        overlaps = any(start < until and end > since for since, until in windows)
        (during if overlaps else quiet).append(ms)
    log_ins = [ms for name, _, ms, ok in burst["samples"] if name == "log-in (burst)" and ok]
    return quiet, during, log_ins


def _figures(
    idle: dict[str, Any],
    loaded: dict[str, Any],
    burst: dict[str, Any],
    thumbnails: dict[str, Any],
    drain: dict[str, Any],
    setup: dict[str, Any],
    load_before: tuple[float, float, float],
) -> dict[str, Any]:
    idle_pages, loaded_pages = _pages(idle["samples"]), _pages(loaded["samples"])
    quiet, during, log_ins = _burst_split(burst)
    burst_s = [round((until - since) * 1000) for since, until in burst["bursts"]]
    return {
        "site_upload_p50_ms_idle": idle_pages.get("upload", {}).get("p50_ms"),
        "site_upload_p99_ms_idle": idle_pages.get("upload", {}).get("p99_ms"),
        "site_upload_p50_ms_loaded": loaded_pages.get("upload", {}).get("p50_ms"),
        "site_upload_p99_ms_loaded": loaded_pages.get("upload", {}).get("p99_ms"),
        "site_requests_per_s": _per_second(loaded["samples"]),
        "site_thumbnails_per_s": thumbnails["made_per_s"],
        "site_page_p99_ms_browsing": _round(percentile(quiet, 99)),
        "site_page_p99_ms_login_burst": _round(percentile(during, 99)),
        "site_login_p99_ms_burst": _round(percentile(log_ins, 99)),
        "site_details": {
            "idle": idle_pages,
            "loaded": loaded_pages,
            "thumbnails": {**thumbnails, "drained_after_s": drain["waited_s"], "left": drain["pending"]},
            "log_in_burst": {
                "bursts": len(burst_s),
                "burst_ms": burst_s,
                "log_ins": len(log_ins),
                "log_in_p50_ms": _round(percentile(log_ins, 50)),
                "pages_without": {"count": len(quiet), "p50_ms": _round(percentile(quiet, 50))},
                "pages_during": {"count": len(during), "p50_ms": _round(percentile(during, 50))},
                "pages": _pages(burst["samples"]),
            },
            "setup": setup,
            "machine": {
                "cpus": os.cpu_count(),
                "load_before": [round(x, 2) for x in load_before],
                "load_after": [round(x, 2) for x in os.getloadavg()],
            },
        },
    }


def _round(value: float | None) -> int | None:
    return None if value is None else round(value)


def table(figures: dict[str, Any]) -> str:
    """The figures as a Markdown table, page by page, idle against loaded, then the burst."""
    details = figures["site_details"]
    lines = [
        "| request | idle p50 / p99 ms | loaded p50 / p99 ms | loaded count (failed) |",
        "|---|---|---|---|",
    ]
    for name in sorted(set(details["idle"]) | set(details["loaded"])):
        idle, loaded = details["idle"].get(name, {}), details["loaded"].get(name, {})
        lines.append(
            f"| {name} | {idle.get('p50_ms', '-')} / {idle.get('p99_ms', '-')} "
            f"| {loaded.get('p50_ms', '-')} / {loaded.get('p99_ms', '-')} "
            f"| {loaded.get('count', 0)} ({loaded.get('failures', 0)}) |"
        )
    thumbs, burst, setup = details["thumbnails"], details["log_in_burst"], details["setup"]
    lines += [
        "",
        f"Loaded: {figures['site_requests_per_s']} requests/s; {thumbs['uploaded']} photos uploaded, "
        f"{thumbs['done']} made into thumbnails at {thumbs['made_per_s']}/s "
        f"(upload to done p50 {thumbs['wait_p50_ms']} ms, max {thumbs['wait_max_ms']} ms), "
        f"{thumbs['failed']} failed; backlog drained {thumbs['drained_after_s']} s after the phase.",
        f"Log-in burst ({burst['bursts']} x 20 at once, each {burst['burst_ms']} ms): reading pages p99 "
        f"{figures['site_page_p99_ms_browsing']} ms without ({burst['pages_without']['count']} views), "
        f"{figures['site_page_p99_ms_login_burst']} ms during ({burst['pages_during']['count']} views); "
        f"log-in p50 / p99 {burst['log_in_p50_ms']} / {figures['site_login_p99_ms_burst']} ms.",
        f"{setup['web']} (password hashes at once per process: {setup['password_hashes_at_once']}); "
        f"{setup['worker']}; {setup['database']}; load average before / after "
        f"{details['machine']['load_before'][0]} / {details['machine']['load_after'][0]}.",
    ]
    return "\n".join(lines)


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.site", description=__doc__.splitlines()[0])
    parser.add_argument("--idle-s", type=float, default=20.0, help="seconds of the lone visitor")
    parser.add_argument("--loaded-s", type=float, default=60.0, help="seconds of the 20 users")
    parser.add_argument("--database", choices=["postgres", "sqlite"], default="postgres")
    parser.add_argument("--web-threads", type=int, default=WEB_THREADS, help="threads per gunicorn process")
    parser.add_argument("--json", help="write the figures here")
    parser.add_argument("--quiet", action="store_true", help="no table on stdout")
    args = parser.parse_args(argv)
    work = BENCH / ".work" / time.strftime("site-%H%M%S")
    figures = run(
        idle_s=args.idle_s,
        loaded_s=args.loaded_s,
        database=args.database,
        work=work,
        web_threads=args.web_threads,
    )
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")
    if not args.quiet:
        print(table(figures))


if __name__ == "__main__":
    main(sys.argv[1:])
