"""A worker process for one client: `python -m bench.worker CLIENT ENDPOINT NAMESPACE THREADS [STATS_FILE]`.

It consumes until SIGTERM (the recovery test SIGKILLs it instead). Actors report their starts to the
UDP port in the environment (see bench.common). Where the client counts its own requests (offload),
the counts are written to STATS_FILE at exit, to cross-check the proxy.
"""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading
from pathlib import Path

from bench.clients import load


def main(argv: list[str]) -> None:
    client, endpoint_url, namespace, threads = argv[:4]
    stats_file = Path(argv[4]) if len(argv) > 4 else None
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    stats = load(client).run_worker(endpoint_url, namespace, int(threads), stop)
    if stats_file is not None and stats:
        stats_file.write_text(json.dumps(stats))


if __name__ == "__main__":
    main(sys.argv[1:])
