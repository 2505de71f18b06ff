"""One thread-safe, counted boto3 SQS client, with errors translated at the boundary."""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

import boto3
import botocore.config
import botocore.exceptions
from dramatiq.errors import ConnectionClosed

from brokers.errors import QueueDoesNotExist, SQSRequestFailed
from brokers.limits import MAX_LONG_POLL_MS, seconds

#: The read timeout must outlast a long poll, or every idle receive would end as a timeout error.
READ_TIMEOUT_S = seconds(MAX_LONG_POLL_MS) + 10
CONNECT_TIMEOUT_S = 5
#: Attempts per request in botocore's `standard` retry mode (throttling, 5xx and connection errors).
MAX_ATTEMPTS = 4
#: Pollers hold a connection for a whole long poll each; senders and the lease keeper need more.
MAX_POOL_CONNECTIONS = 64

_CONNECTION_ERRORS = (botocore.exceptions.ConnectionError, botocore.exceptions.HTTPClientError)
_MISSING_QUEUE_CODES = {"AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"}


class SQSClient:
    """Wraps one boto3 client: counts every HTTP request by action and translates errors.

    botocore clients are thread-safe (boto3 resources are not, which is why none is used here).
    """

    def __init__(
        self,
        *,
        client: Any = None,
        endpoint_url: str | None = None,
        region_name: str | None = None,
        **client_options: Any,
    ) -> None:
        if client is None:
            config = botocore.config.Config(
                retries={"mode": "standard", "max_attempts": MAX_ATTEMPTS},
                read_timeout=READ_TIMEOUT_S,
                connect_timeout=CONNECT_TIMEOUT_S,
                max_pool_connections=MAX_POOL_CONNECTIONS,
            )
            if "config" in client_options:
                config = config.merge(client_options.pop("config"))
            client = boto3.session.Session().client(
                "sqs", endpoint_url=endpoint_url, region_name=region_name, config=config, **client_options
            )
        self.client = client
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()
        # before-send fires once per HTTP attempt, botocore's own retries included.
        client.meta.events.register("before-send.sqs", self._count)

    def _count(self, event_name: str, **_: Any) -> None:
        action = event_name.rsplit(".", 1)[-1]
        with self._lock:
            self._counts[action] += 1

    @property
    def stats(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)

    def call(self, action: str, **params: Any) -> dict[str, Any]:
        """Make one SQS request by its action name ("SendMessageBatch")."""
        method = getattr(self.client, _snake(action))
        try:
            response: dict[str, Any] = method(**params)
        except _CONNECTION_ERRORS as e:
            raise ConnectionClosed(e) from None
        except botocore.exceptions.ClientError as e:
            error = e.response.get("Error", {})
            code = error.get("Code", "Unknown")
            detail = error.get("Message", str(e))
            if code in _MISSING_QUEUE_CODES:
                raise QueueDoesNotExist(
                    f"SQS {action} failed: the queue does not exist ({detail})."
                ) from None
            raise SQSRequestFailed(action, code, detail) from None
        return response


def _snake(action: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in action).lstrip("_")
