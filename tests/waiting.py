"""Waiting in tests for what has no event to await: a condition polled until true, and the worker's queue."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest


def wait_until[T](
    check: Callable[[], T], *, timeout: float = 10.0, what: str = "", interval: float = 0.05
) -> T:
    """Call check() until it returns something truthy and return that; fail the test after timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"Timed out after {timeout} s waiting for {what or 'the condition'}.")
        time.sleep(interval)


def sent_and_done(broker: Any, actor: Any) -> None:
    """Wait until a request's messages reached SQS (a slow send may outlive the request), then until the
    worker has processed every message of the actor's queue."""
    from web.core.enqueue import wait_for_background_sends

    assert wait_for_background_sends(), "a send that outlived its request is still running"
    broker.join(actor.queue_name, timeout=30_000)
