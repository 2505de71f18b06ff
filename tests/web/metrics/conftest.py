"""Databases of their own for the servers the metrics tests start, and ports for them."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from tests.databases import DatabaseTemplate, OwnDatabase, migrated_template


@pytest.fixture(scope="module")
def migrated_database(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DatabaseTemplate]:
    with migrated_template(tmp_path_factory.mktemp("metrics-db")) as template:
        yield template


@pytest.fixture
def database(migrated_database: DatabaseTemplate) -> OwnDatabase:
    return migrated_database.copy()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
