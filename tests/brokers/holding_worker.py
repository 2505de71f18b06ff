"""A worker process for the recovery test: its `hold` actor never finishes, until the process is killed.

python -m tests.brokers.holding_worker ENDPOINT_URL NAMESPACE VISIBILITY_TIMEOUT_MS
"""

from __future__ import annotations

import sys
import threading

import dramatiq

from brokers import SQSBroker


def main() -> None:
    endpoint_url, namespace, visibility_timeout = sys.argv[1:4]
    broker = SQSBroker(
        namespace=namespace,
        endpoint_url=endpoint_url,
        region_name="us-east-1",
        visibility_timeout=int(visibility_timeout),
        middleware=[],
    )
    forever = threading.Event()
    printing = threading.Lock()

    @dramatiq.actor(broker=broker, actor_name="hold")
    def hold(n: int) -> None:
        with printing:  # whole lines only: the test reads one per message
            print(f"started {n}", flush=True)
        forever.wait()

    dramatiq.Worker(broker, worker_threads=20, worker_timeout=100).start()
    forever.wait()


if __name__ == "__main__":
    main()
