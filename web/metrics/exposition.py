"""Who may read the metrics, where a process's metric files live, and the text a scrape gets.

A server of several processes (gunicorn's workers, dramatiq's) counts in files, one per process and
kind, in a directory the processes share (prometheus_client's multiprocess mode); a scrape sums them.
The directory belongs to one run of the server: it is named after the process that started the
others (gunicorn's master, dramatiq's main process), so a restart begins at zero instead of adding
to a crashed run's files, and directories of runs whose owner is gone are removed. The variable
PROMETHEUS_MULTIPROC_DIR must be set before prometheus_client is first imported: it decides then.
"""

from __future__ import annotations

import hmac
import logging
import os
import re
import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

#: What prometheus_client reads to decide, at import, that values go to files.
MULTIPROC_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
_RUN_DIRECTORY = re.compile(r"^(?P<kind>[a-z]+)-(?P<pid>\d+)$")
_LIVE_GAUGE_FILE = re.compile(r"^gauge_live\w+?_(?P<pid>\d+)\.db$")


def authorized(authorization: str | None, token: str | None) -> bool:
    """True when the Authorization header is `Bearer <token>`; always False without a token.

    The comparison takes the same time however much of the token matches, so timing tells nothing.
    """
    if not token or not authorization:
        return False
    scheme, _, given = authorization.partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(given.strip().encode(), token.encode())


def use_run_directory(base: str | Path, *, kind: str, owner: int) -> Path:
    """Make `<base>/<kind>-<owner>` this process's multiprocess directory, and return it.

    Call it before prometheus_client is imported, in the process that starts the others or in each
    of them with the same owner (the parent's pid). Directories of the same kind whose owner has
    exited are removed first: their counts belong to a run that is over.
    """
    base = Path(base)
    base.mkdir(parents=True, exist_ok=True)
    for old in base.iterdir():
        match = _RUN_DIRECTORY.match(old.name)
        if match and match["kind"] == kind and int(match["pid"]) != owner and not _alive(int(match["pid"])):
            shutil.rmtree(old, ignore_errors=True)
    directory = base / f"{kind}-{owner}"
    directory.mkdir(exist_ok=True)
    os.environ[MULTIPROC_VARIABLE] = str(directory)
    return directory


def multiprocess_directory() -> str | None:
    return os.environ.get(MULTIPROC_VARIABLE) or None


def counting_in_files() -> bool:
    """True when this process's metric values really go to the shared files.

    False when prometheus_client was imported before the directory was set: the process then counts
    in memory that no scrape of the others sees.
    """
    from prometheus_client import values

    return bool(multiprocess_directory()) and values.ValueClass is not values.MutexValue


def forget_dead_processes(directory: str) -> None:
    """Drop the in-progress gauges of processes that died without saying so (killed, crashed).

    prometheus_client's `live*` gauges count only processes that are alive, but it learns of a death
    only from mark_process_dead, which a killed process never calls.
    """
    from prometheus_client import multiprocess

    for path in Path(directory).glob("gauge_live*.db"):
        match = _LIVE_GAUGE_FILE.match(path.name)
        if match and not _alive(pid := int(match["pid"])):
            multiprocess.mark_process_dead(pid, directory)


def render(extra: Iterable[Any] = ()) -> tuple[bytes, str]:
    """The exposition text of this server's metrics plus the `extra` collectors, and its content type.

    With a multiprocess directory every process's files are summed; without one (a single-process
    server: runserver, Lambda, tests) this process's own registry is read.
    """
    from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
    from prometheus_client.multiprocess import MultiProcessCollector

    # A fresh registry per scrape: the multiprocess collector must not meet the live metrics.
    registry = CollectorRegistry()
    directory = multiprocess_directory()
    if directory:
        forget_dead_processes(directory)
        MultiProcessCollector(registry, path=directory)
    else:
        registry.register(_Forward(REGISTRY))
    for collector in extra:
        registry.register(collector)
    return generate_latest(registry), CONTENT_TYPE_LATEST


class _Forward:
    """Collects what another registry holds, so it can sit beside per-scrape collectors."""

    def __init__(self, registry: Any) -> None:
        self._registry = registry

    def describe(self) -> list[Any]:
        return []  # names are checked in the registry it forwards; collecting twice would cost a scrape

    def collect(self) -> Iterator[Any]:
        yield from self._registry.collect()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: alive
    return True
