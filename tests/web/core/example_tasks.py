"""django.tasks tasks for the backend's tests; the worker finds them by their module path."""

from __future__ import annotations

import asyncio
import threading
import time

from django.tasks import TaskContext, task

#: Never set: what a task that must be stopped by its time limit waits for.
never = threading.Event()


@task
def add(a: int, b: int) -> int:
    return a + b


@task
def describe(name: str, *, tags: list[str], sizes: dict[str, int]) -> dict[str, object]:
    return {"name": name, "tags": sorted(tags), "largest": max(sizes, key=sizes.__getitem__)}


@task
def fail(reason: str) -> None:
    raise ValueError(reason)


@task
async def greet(name: str) -> str:
    await asyncio.sleep(0)  # a real suspension: the worker runs the coroutine in an event loop
    return f"Hello, {name}."


@task(takes_context=True, max_retries=2, min_backoff=1)
def flaky(context: TaskContext, succeed_on: int) -> int:
    if context.attempt < succeed_on:
        raise ConnectionError(f"attempt {context.attempt} fails")
    return context.attempt


@task
def return_a_set() -> set[int]:
    return {1, 2}


@task(time_limit=1_000)
def hang() -> str:
    deadline = time.monotonic() + 30  # a test whose time limit never fires fails, rather than hangs
    while time.monotonic() < deadline:
        never.wait(0.05)  # short waits, so the time limit's exception is raised between them
    return "never stopped"
