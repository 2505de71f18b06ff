"""Playwright driving the system's Chromium (headless) against pytest-django's live server."""

from __future__ import annotations

import os
import shutil
from typing import Any

import pytest
from playwright.sync_api import expect

# Playwright's sync API runs an event loop in the test's thread; the test still reads the
# database through the ORM, which Django refuses there unless told it is safe (it is: one thread).
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
# Chromium's first start on a fresh machine builds its font cache, which can take seconds.
expect.set_options(timeout=20_000)

_CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict[str, Any]) -> dict[str, Any]:
    chromium = shutil.which("chromium")
    if chromium is None:
        # A failure, not a skip: skipped browser tests would let the pages' own tests stop running unseen.
        pytest.fail("The browser tests need the system's chromium on PATH (.ci/apt-packages installs it).")
    return {**browser_type_launch_args, "executable_path": chromium, "args": _CHROMIUM_ARGS}


@pytest.fixture(scope="session")
def base_url() -> None:
    """Pages are opened by full URL; this also replaces pytest-playwright's fallback fixture."""
    return
