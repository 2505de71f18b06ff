"""LocalStack core (SQS only) on a free loopback port, started without Docker from its own venv."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import boto3
import botocore.config

from bench.envs import LOCALSTACK_VENV, python

#: LocalStack answers within this many seconds on this kind of machine, or something is wrong.
START_TIMEOUT_S = 120
#: Dummy credentials and region: nothing here ever talks to AWS.
CREDENTIALS = {"aws_access_key_id": "bench", "aws_secret_access_key": "bench", "region_name": "us-east-1"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def sqs_client(endpoint_url: str):
    """A plain boto3 SQS client for the harness's own look-ups (queue counters, readiness)."""
    config = botocore.config.Config(retries={"mode": "standard", "max_attempts": 2}, read_timeout=30)
    return boto3.session.Session().client("sqs", endpoint_url=endpoint_url, config=config, **CREDENTIALS)


class LocalStack:
    """A LocalStack process bound to 127.0.0.1 only; `stop()` ends it (SIGTERM, then SIGKILL)."""

    def __init__(self, work: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._work = work
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        root = self._work / "localstack"
        root.mkdir(parents=True, exist_ok=True)
        address = f"127.0.0.1:{self.port}"
        env = {
            **os.environ,
            # hypercorn binds exactly the address given; the default gateway binds every interface.
            "GATEWAY_SERVER": "hypercorn",
            "GATEWAY_LISTEN": address,
            "LOCALSTACK_HOST": address,
            "SERVICES": "sqs",
            "EAGER_SERVICE_LOADING": "1",
            "SQS_ENDPOINT_STRATEGY": "path",
            "DISABLE_EVENTS": "1",
            "SKIP_SSL_CERT_DOWNLOAD": "1",
            "DNS_ADDRESS": "0",
            "LS_LOG": "warn",
            "FILESYSTEM_ROOT": str(root),
        }
        self._log = open(self._work / "localstack.log", "wb")  # noqa: SIM115 (closed in stop)
        self._process = subprocess.Popen(
            [str(python(LOCALSTACK_VENV)), "-m", "localstack.runtime.main"],
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self._wait_ready()

    def _wait_ready(self) -> None:
        client = sqs_client(self.url)
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if self._process is not None and self._process.poll() is not None:
                raise RuntimeError(f"LocalStack exited early; see {self._work / 'localstack.log'}")
            try:
                client.list_queues()  # signed, as every client's requests are
                return
            except Exception:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError("LocalStack did not answer a signed ListQueues in time.") from None
                time.sleep(0.5)

    def version(self) -> str:
        result = subprocess.run(
            [
                str(python(LOCALSTACK_VENV)),
                "-c",
                "import importlib.metadata as m; print(m.version('localstack-core'))",
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        return result.stdout.strip() or "unknown"

    def stop(self) -> None:
        if self._process is None:
            return
        if self._process.poll() is None:
            os.killpg(self._process.pid, signal.SIGTERM)
            try:
                self._process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self._process.pid, signal.SIGKILL)
                self._process.wait(timeout=15)
        self._process = None
        self._log.close()
