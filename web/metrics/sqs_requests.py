"""offload_sqs_requests_total{action}: the SQS requests a process's broker made, from `broker.stats`.

The broker counts its own requests (botocore's retries included) in memory. A process copies what
grew since its last copy into a Prometheus counter, whose value lives in the shared multiprocess
files where there are any, so a scrape of one process sees every process's requests.
"""

from __future__ import annotations

import functools
import threading
import weakref
from typing import Any

NAME = "offload_sqs_requests_total"

_lock = threading.Lock()
#: What each broker had counted at its last copy; a broker's requests are never copied twice.
_copied: weakref.WeakKeyDictionary[Any, dict[str, int]] = weakref.WeakKeyDictionary()


@functools.cache
def _counter() -> Any:
    from prometheus_client import Counter

    return Counter(
        NAME.removesuffix("_total"),
        "SQS requests made by the broker, by action (each HTTP attempt, botocore's retries included).",
        ["action"],
    )


def copy_sqs_requests(broker: Any) -> None:
    """Add the requests `broker` made since the last call to offload_sqs_requests_total."""
    stats = getattr(broker, "stats", None)
    if not isinstance(stats, dict):
        return  # not an SQS broker (the stub broker, say): it makes no SQS requests
    counter = _counter()
    with _lock:
        before = _copied.get(broker, {})
        for action, count in stats.items():
            if count > before.get(action, 0):
                counter.labels(action=action).inc(count - before.get(action, 0))
        _copied[broker] = stats
