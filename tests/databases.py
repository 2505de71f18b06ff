"""Databases of a test's own, for the processes it starts (`manage.py runscheduler`, say).

They are of the suite's own kind: a run on SQLite gets SQLite files, a run on PostgreSQL gets new
databases on the same server. Each is copied from a template migrated once, so a test starts from
the schema alone in a fraction of a second, and the test reads what the processes wrote with plain
SQL, as an operator would.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class OwnDatabase:
    """A database for the processes of one test: `url` for their DATABASE_URL, `query` to read it."""

    url: str
    vendor: str
    path: Path | None = None  # SQLite only
    connect_args: dict[str, str] = field(default_factory=dict)  # PostgreSQL only

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        """The rows of one SELECT, read in a connection of its own."""
        if self.vendor == "sqlite":
            connection = sqlite3.connect(self.path, timeout=10)
            try:
                return connection.execute(sql).fetchall()
            finally:
                connection.close()
        import psycopg

        with psycopg.connect(**self.connect_args, autocommit=True) as connection:
            return connection.execute(sql).fetchall()


class DatabaseTemplate:
    """A migrated database that `copy()` clones; made by `migrated_template()`."""

    def __init__(self, directory: Path) -> None:
        from django.conf import settings

        self.settings = dict(settings.DATABASES["default"])
        self.vendor = "sqlite" if self.settings["ENGINE"].endswith("sqlite3") else "postgresql"
        if self.vendor == "postgresql" and not self.settings["ENGINE"].endswith("postgresql"):
            raise NotImplementedError(f"No own databases for {self.settings['ENGINE']} yet.")
        self.directory = directory
        self.name = f"template_{uuid.uuid4().hex[:12]}"
        self._made: list[str] = []

    def create(self) -> None:
        if self.vendor == "postgresql":
            self._admin(f'CREATE DATABASE "{self.name}"')
        subprocess.run(
            [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
            cwd=ROOT,
            env={**os.environ, "DATABASE_URL": self._database(self.name).url},
            check=True,
            timeout=120,
        )

    def copy(self) -> OwnDatabase:
        name = f"own_{uuid.uuid4().hex[:12]}"
        if self.vendor == "sqlite":
            shutil.copyfile(self._database(self.name).path or "", self._database(name).path or "")
        else:
            self._admin(f'CREATE DATABASE "{name}" TEMPLATE "{self.name}"')
        self._made.append(name)
        return self._database(name)

    def drop_all(self) -> None:
        """Drops the copies and the template; a process still connected is disconnected first."""
        if self.vendor == "postgresql":
            for name in [*self._made, self.name]:
                self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        self._made.clear()

    def _database(self, name: str) -> OwnDatabase:
        if self.vendor == "sqlite":
            path = self.directory / f"{name}.sqlite3"
            return OwnDatabase(url=f"sqlite:///{path}", vendor="sqlite", path=path)
        connect_args = self._connect_args(name)
        user = quote(connect_args.get("user", ""), safe="")
        password = quote(connect_args.get("password", ""), safe="")
        credentials = f"{user}:{password}@" if password else f"{user}@" if user else ""
        host = quote(connect_args.get("host", ""), safe="")
        port = f":{connect_args['port']}" if connect_args.get("port") else ""
        url = f"postgres://{credentials}{host}{port}/{name}"
        return OwnDatabase(url=url, vendor="postgresql", connect_args=connect_args)

    def _connect_args(self, name: str) -> dict[str, str]:
        args = {
            "host": self.settings.get("HOST") or "",
            "port": str(self.settings.get("PORT") or ""),
            "user": self.settings.get("USER") or "",
            "password": self.settings.get("PASSWORD") or "",
            "dbname": name,
        }
        return {key: value for key, value in args.items() if value}

    def _admin(self, sql: str) -> None:
        import psycopg

        # The server's own maintenance database: CREATE/DROP DATABASE cannot run in the one they copy.
        with psycopg.connect(**self._connect_args("postgres"), autocommit=True) as connection:
            connection.execute(sql)


@contextlib.contextmanager
def migrated_template(directory: Path) -> Iterator[DatabaseTemplate]:
    """A freshly migrated template of the suite's kind; it and its copies are dropped at the end."""
    template = DatabaseTemplate(directory)
    try:
        template.create()
        yield template
    finally:
        template.drop_all()
