"""The four clients under test, each a producer (in the driver process) and a worker (its own process).

Every client module offers the same two things:
- `Producer(endpoint_url, namespace)` with `send(i, sent)` (one message, as a web request sends it),
  `send_bulk(items)` (its best bulk API), `send_long(i)`, `send_flaky(i)`, `flush()` and `close()`;
- `run_worker(endpoint_url, namespace, threads, stop)`, which consumes until `stop` is set (or, for
  Celery, until SIGTERM) with the client's documented defaults.
"""

from __future__ import annotations

import importlib
from types import ModuleType

#: Client key -> module, in the order of the first round.
CLIENTS = {
    "boto3_batched": "bench.clients.boto3_batched",
    "offload": "bench.clients.offload",
    "dramatiq_sqs": "bench.clients.dramatiq_sqs",
    "celery": "bench.clients.celery_sqs",
}
#: How the report names each client.
LABELS = {
    "boto3_batched": "A: boto3, hand-batched",
    "offload": "B: offload SQSBroker",
    "dramatiq_sqs": "C: dramatiq_sqs",
    "celery": "D: Celery SQS transport",
}


def load(client: str) -> ModuleType:
    return importlib.import_module(CLIENTS[client])
