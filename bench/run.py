"""The harness: LocalStack, one counting proxy per measurement, the drivers, and the report.

Order of work:
1. LocalStack (SQS only) on a free loopback port.
2. The once-per-client lane starts first: idle (60 s), recovery after SIGKILL, and the long retry,
   for every client at once, each on its own queue and proxy. The rounds wait until its start-up
   burst is over; from then on it is almost all sleeping (idle polls, long tasks, a delayed retry).
3. Rounds: every client in turn, in rotating order, runs bulk, steady x1 and steady x8.
4. The long-retry lane waits for the retry to run again (16 min) within the time budget.
5. LocalStack stops; the Lambda worker's and the site's benchmarks run (bench/beside.py).
6. bench/results/: latest.json, latest.md, latest.png (and latest-details.json).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench import beside, report
from bench.clients import CLIENTS
from bench.clients.offload import OFFLOAD_LINGER_ENV
from bench.proxy import CountingProxy
from bench.server import LocalStack

BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "results"
#: Clients that are task queues (the hand loop has no long tasks or retries to measure).
TASK_QUEUES = ["offload", "dramatiq_sqs", "celery"]
#: A throughput driver that takes longer than this is stopped (a broken client must not hang the run).
ROUND_TIMEOUT_S = 900


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--bulk", type=int, default=5000, help="messages in the bulk figure")
    parser.add_argument("--steady-s", type=float, default=5.0, help="seconds each steady producer runs")
    parser.add_argument("--idle-s", type=float, default=60.0)
    parser.add_argument("--drain-timeout-s", type=float, default=300.0)
    parser.add_argument(
        "--budget-min",
        type=float,
        default=23.0,
        help="the long-retry lane is stopped when this much has passed",
    )
    parser.add_argument("--give-up-s", type=float, default=300.0, help="recovery gives up after this")
    parser.add_argument("--hold-s", type=float, default=40.0, help="recovery: seconds held before SIGKILL")
    parser.add_argument("--clients", default=",".join(CLIENTS), help="comma-separated subset")
    parser.add_argument("--no-once", action="store_true", help="skip idle, recovery and long retry")
    parser.add_argument("--out", default=str(RESULTS), help="where the results go")
    parser.add_argument(
        "--offload-linger-ms",
        type=int,
        default=None,
        help="offload's receive_linger (default: the broker's own), to measure the linger's trade-off",
    )
    parser.add_argument(
        "--beside",
        default="lambda,site",
        help="the benchmarks run after the broker's (comma-separated: lambda, site; empty for none)",
    )
    parser.add_argument(
        "--site-loaded-s", type=float, default=60.0, help="seconds of the site's loaded phase"
    )
    return parser.parse_args(argv)


class Lane:
    """A driver process with its own proxy."""

    def __init__(
        self,
        work: Path,
        server: LocalStack,
        client: str,
        phase: str,
        tag: str,
        *,
        direct: bool = False,
        **config: Any,
    ) -> None:
        self.client, self.phase = client, phase
        # A direct lane talks to the server itself: it measures what the proxy costs, uncounted.
        self.proxy = None if direct else CountingProxy(server.port)
        namespace = f"{tag}-{client.replace('_', '')}-{phase}{'-direct' if direct else ''}"
        self.out = work / f"{namespace}.json"
        self.ready_file = work / f"{namespace}.ready"
        config = {
            "client": client,
            "phase": phase,
            "proxy": server.url if self.proxy is None else self.proxy.url,
            "counted": self.proxy is not None,
            "namespace": namespace,
            "out": str(self.out),
            "ready": str(self.ready_file),
            "logs": str(work / "logs"),
            **config,
        }
        self.log = work / "logs" / f"{namespace}-driver.log"
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "bench.drive", json.dumps(config)],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.started = time.monotonic()

    def is_ready(self) -> bool:
        return self.ready_file.exists() or self.process.poll() is not None

    def finish(self, timeout: float | None) -> dict[str, Any]:
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.terminate()
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.proxy is not None:
            self.proxy.close()
        result: dict[str, Any] = json.loads(self.out.read_text()) if self.out.exists() else {}
        if self.process.returncode not in (0, None) or not result:
            tail = self.log.read_text(errors="replace").splitlines()[-15:]
            result["error"] = "\n".join(tail) or f"exit status {self.process.returncode}"
            print(f"bench: {self.client} {self.phase} failed:\n  " + "\n  ".join(tail), flush=True)
        result["wall_s"] = time.monotonic() - self.started
        return result


def main(argv: list[str]) -> None:
    args = parse_args(argv)
    if args.offload_linger_ms is not None:
        os.environ[OFFLOAD_LINGER_ENV] = str(args.offload_linger_ms)  # drivers and workers inherit it
    began = time.monotonic()
    clients = [c for c in CLIENTS if c in args.clients.split(",")]
    tag = time.strftime("b%H%M%S")
    work = BENCH / ".work" / tag
    (work / "logs").mkdir(parents=True, exist_ok=True)
    load_before = os.getloadavg()
    broker_before = broker_fingerprint()
    server = LocalStack(work)
    print(f"bench: starting LocalStack on 127.0.0.1:{server.port}", flush=True)
    server.start()
    rounds: list[dict[str, Any]] = []
    once: dict[str, dict[str, Any]] = {client: {} for client in clients}
    try:
        lanes: list[Lane] = []
        if not args.no_once:
            margin = 150
            for client in clients:
                lanes.append(Lane(work, server, client, "idle", tag, idle_s=args.idle_s))
                if client in TASK_QUEUES:
                    lanes.append(
                        Lane(
                            work,
                            server,
                            client,
                            "recovery",
                            tag,
                            give_up_s=args.give_up_s,
                            hold_s=args.hold_s,
                        )
                    )
                    lanes.append(Lane(work, server, client, "retry", tag, retry_margin_s=margin))
            deadline = time.monotonic() + 300
            while not all(lane.is_ready() for lane in lanes) and time.monotonic() < deadline:
                time.sleep(1)
            print(f"bench: idle, recovery and long-retry lanes under way ({len(lanes)} drivers)", flush=True)

        for number in range(args.rounds):
            rounds.append(run_round(work, server, tag, number, clients, args))

        budget_end = began + args.budget_min * 60
        for lane in lanes:
            timeout = None if lane.phase != "retry" else max(0.0, budget_end - time.monotonic())
            once[lane.client][lane.phase] = lane.finish(timeout)
            print(f"bench: {lane.client} {lane.phase} done", flush=True)
    finally:
        server.stop()

    # The Lambda worker and the site, on a machine LocalStack no longer shares.
    names = [name for name in args.beside.split(",") if name]
    figures = beside.run(names, loaded_s=args.site_loaded_s) if names else {}
    meta = {
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "wall_s": time.monotonic() - began,
        "settings": {
            "rounds": args.rounds,
            "bulk_messages": args.bulk,
            "steady_s": args.steady_s,
            "idle_s": args.idle_s,
            "worker_threads": 8,
            "offload_receive_linger_ms": args.offload_linger_ms,
        },
        "machine": machine(load_before),
        "versions": versions(server, broker_before),
        # The digest of brokers/, not the commit: other files may be committed during a run.
        "broker_changed_during_run": broker_fingerprint().split(" ", 1)[1] != broker_before.split(" ", 1)[1],
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    report.write(out, meta, rounds, once, figures)
    print(f"bench: results in {out} ({meta['wall_s'] / 60:.1f} min)", flush=True)


def run_round(
    work: Path, server: LocalStack, tag: str, number: int, clients: list[str], args: argparse.Namespace
) -> dict[str, Any]:
    """Every client in turn (the order rotates each round), and A once more without the proxy."""
    order = clients[number % len(clients) :] + clients[: number % len(clients)]
    print(f"bench: round {number + 1}/{args.rounds}: {', '.join(order)}", flush=True)
    results: dict[str, Any] = {"order": order, "clients": {}}
    for client in order:
        if client == report.LIMIT and number % 2:
            results["limit_direct"] = limit_direct(work, server, f"{tag}r{number + 1}", args)
        lane = Lane(
            work,
            server,
            client,
            "throughput",
            f"{tag}r{number + 1}",
            bulk_messages=args.bulk,
            steady_s=args.steady_s,
            drain_timeout_s=args.drain_timeout_s,
        )
        results["clients"][client] = result = lane.finish(ROUND_TIMEOUT_S)
        print(f"bench:   {client}: {report.one_line(result)}", flush=True)
        if client == report.LIMIT and not number % 2:
            results["limit_direct"] = limit_direct(work, server, f"{tag}r{number + 1}", args)
    return results


def limit_direct(work: Path, server: LocalStack, tag: str, args: argparse.Namespace) -> dict[str, Any]:
    """A's bulk figure without the counting proxy, next to the proxied one: what the proxy costs it.

    It runs after A's proxied figures in odd rounds and before them in even ones, so that neither
    side always gets the fresher server.
    """
    lane = Lane(
        work,
        server,
        report.LIMIT,
        "bulk_only",
        tag,
        direct=True,
        bulk_messages=args.bulk,
        drain_timeout_s=args.drain_timeout_s,
    )
    result = lane.finish(ROUND_TIMEOUT_S)
    print(f"bench:   {report.LIMIT} without the proxy: {report.one_line(result)}", flush=True)
    return result


def machine(load_before: tuple[float, float, float]) -> dict[str, Any]:
    cpu = "unknown"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    memory = None
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory = round(int(line.split()[1]) / 1024 / 1024, 1)
    return {
        "cpus": os.cpu_count(),
        "cpu": cpu,
        "memory_gib": memory,
        "os": platform.platform(),
        "python": platform.python_version(),
        "load_before": [round(x, 2) for x in load_before],
        "load_after": [round(x, 2) for x in os.getloadavg()],
    }


def broker_fingerprint() -> str:
    """The commit and a digest of brokers/ as the workers import it (others may be editing it)."""
    root = BENCH.parent
    digest = hashlib.sha256()
    for path in sorted((root / "brokers").glob("*.py")):
        digest.update(path.name.encode() + path.read_bytes())
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False, cwd=root
    )
    return f"{commit.stdout.strip() or 'unknown'} (brokers/ {digest.hexdigest()[:10]})"


def versions(server: LocalStack, broker: str) -> dict[str, str]:
    import importlib.metadata as metadata

    found = {
        name: metadata.version(name) for name in ("dramatiq", "boto3", "dramatiq-sqs", "celery", "kombu")
    }
    found["localstack-core"] = server.version()
    found["offload"] = broker
    return found


if __name__ == "__main__":
    main(sys.argv[1:])
