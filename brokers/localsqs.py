"""A loopback SQS (and S3) server for development and tests: moto in server mode.

    python -m brokers.localsqs [--host 127.0.0.1] [--port 9324] [--bucket NAME ...]
    python -m brokers.localsqs --wait http://127.0.0.1:9324 [--timeout 30]

--bucket creates an S3 bucket once the server is up (the one large messages go to, for `make run`).
The second form waits until a server answers at that URL, so a Procfile can start the worker after it.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
import time
import urllib.error
import urllib.request
from datetime import datetime
from typing import Any

#: The port `make run` serves on.
DEFAULT_PORT = 9324
#: How long --wait waits for the server by default, in seconds.
DEFAULT_WAIT_S = 30.0


def _speed_up_moto_clock() -> None:
    """Make moto's SQS clock cheap: it asks for the time for every queued message on every call.

    moto computes "now" through naive datetimes (about 9 us a call) and does so for each message in
    the queue whenever it counts messages, which it does on every send: 1,000 queued messages made
    each SendMessageBatch take over 100 ms. time.time() gives the same value in 0.1 us.
    """
    from moto.sqs import models

    def unix_time(dt: datetime | None = None) -> float:
        return time.time() if dt is None else original_unix_time(dt)

    def unix_time_millis(dt: datetime | None = None) -> float:
        return unix_time(dt) * 1000.0

    original_unix_time = models.unix_time
    models.unix_time = unix_time
    models.unix_time_millis = unix_time_millis


def _receive_each_message_once() -> None:
    """Make moto's receives take a message one at a time, as SQS does, however many are in flight.

    moto's ReceiveMessage checks that a message is visible and then marks it received, with no lock
    between the two: two receives of one queue running at once (the broker keeps several in flight
    for a backlog) could both take the same message. Here the look-and-mark runs under one lock,
    which a receive lets go of while its long poll waits for messages.
    """
    from moto.sqs import models

    lock = threading.Lock()
    receive_message = models.SQSBackend.receive_message
    wait_for_messages = models.Queue.wait_for_messages

    def receive_alone(self: Any, *args: Any, **kwargs: Any) -> Any:
        with lock:
            return receive_message(self, *args, **kwargs)

    def wait_unlocked(self: Any, timeout: int) -> None:
        lock.release()
        try:
            wait_for_messages(self, timeout)
        finally:
            lock.acquire()

    models.SQSBackend.receive_message = receive_alone  # type: ignore[method-assign]
    models.Queue.wait_for_messages = wait_unlocked  # type: ignore[method-assign]


class LocalSQSServer:
    """moto's threaded server on a loopback port (0 picks a free one)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        try:
            from moto.server import ThreadedMotoServer
        except ImportError:  # pragma: no cover - depends on the environment
            raise SystemExit("The local SQS server needs moto: pip install 'moto[server]'.") from None
        _speed_up_moto_clock()
        _receive_each_message_once()
        self._server = ThreadedMotoServer(ip_address=host, port=port, verbose=False)
        self.host = host
        self.port = port

    @property
    def endpoint_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> LocalSQSServer:
        # One log line per request drowns everything else out.
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        self._server.start()
        self.host, self.port = self._server.get_host_and_port()
        return self

    def stop(self) -> None:
        self._server.stop()

    def create_buckets(self, names: list[str]) -> None:
        """Create S3 buckets on this server (any credentials do for it)."""
        import boto3

        s3 = boto3.session.Session().client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name="us-east-1",
            aws_access_key_id="local",
            aws_secret_access_key="local",  # noqa: S106 - the loopback server takes any
        )
        for name in names:
            s3.create_bucket(Bucket=name)

    def __enter__(self) -> LocalSQSServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def wait_for(url: str, timeout_s: float) -> bool:
    """Wait until something answers HTTP at url; True when it did within timeout_s."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1):  # noqa: S310 - the caller's own local URL
                return True
        except urllib.error.HTTPError:
            return True  # it answered, even if not with 200
        except (urllib.error.URLError, OSError):
            time.sleep(0.2)
    return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m brokers.localsqs", description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default: {DEFAULT_PORT})")
    parser.add_argument(
        "--bucket", action="append", default=[], metavar="NAME", help="create this S3 bucket (repeatable)"
    )
    parser.add_argument("--wait", metavar="URL", help="only wait until a server answers at URL, then exit")
    parser.add_argument("--timeout", type=float, default=DEFAULT_WAIT_S, help="seconds --wait waits")
    args = parser.parse_args(argv)

    if args.wait:
        if wait_for(args.wait, args.timeout):
            return 0
        print(f"No server answered at {args.wait} within {args.timeout:g} s.", file=sys.stderr)
        return 1

    server = LocalSQSServer(args.host, args.port).start()
    server.create_buckets([name for name in args.bucket if name])
    print(f"Local SQS and S3 listening on {server.endpoint_url} (Ctrl-C stops it).", flush=True)
    stopped = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stopped.set())
    stopped.wait()
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
