"""GitHub's search API played by a real HTTP server on a free loopback port.

Tests queue the answers (status, headers, body) and read back the requests it received, so the
client is exercised over real HTTP without a request ever leaving the machine.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    #: Without a Content-Length the body simply ends when the connection closes (HTTP/1.0).
    send_length: bool = True
    #: Send the body `drip_bytes` at a time with `drip_pause_s` between: a server that never quite stops.
    drip_bytes: int = 0
    drip_pause_s: float = 0.0


@dataclass(frozen=True)
class Received:
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    at: float  # time.time() when it arrived


class FakeGitHub:
    def __init__(self) -> None:
        self.received: list[Received] = []
        self._answers: deque[Answer] = deque()
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        # A short poll interval: shutdown() waits for it, once per test.
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, name="fake-github", daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def answer(
        self, status: int, body: Any = b"", headers: dict[str, str] | None = None, **options: Any
    ) -> None:
        """Queue the answer to the next request; dicts and lists are sent as JSON. `options` are
        Answer's: send_length, drip_bytes, drip_pause_s."""
        if not isinstance(body, bytes | str):
            body = json.dumps(body)
        if isinstance(body, str):
            body = body.encode()
        with self._lock:
            self._answers.append(Answer(status, body, headers or {}, **options))

    def __enter__(self) -> FakeGitHub:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                with fake._lock:
                    fake.received.append(
                        Received(parts.path, parse_qs(parts.query), dict(self.headers.items()), time.time())
                    )
                    answer = fake._answers.popleft() if fake._answers else None
                if answer is None:
                    answer = Answer(599, b'{"message": "the test queued no answer for this request"}')
                self.send_response(answer.status)
                for name, value in answer.headers.items():
                    self.send_header(name, value)
                if answer.send_length:
                    self.send_header("Content-Length", str(len(answer.body)))
                self.end_headers()
                if not answer.drip_bytes:
                    self.wfile.write(answer.body)
                    return
                try:
                    for start in range(0, len(answer.body), answer.drip_bytes):
                        self.wfile.write(answer.body[start : start + answer.drip_bytes])
                        self.wfile.flush()
                        time.sleep(answer.drip_pause_s)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up, as it should

            def log_message(self, format: str, *args: Any) -> None:
                pass  # the test reads `received` instead

        return Handler


def search_body(items: list[dict[str, Any]], *, incomplete: bool = False) -> dict[str, Any]:
    return {"total_count": 9_000_000, "incomplete_results": incomplete, "items": items}


def repository_items(count: int = 100, *, stars_offset: int = 0) -> list[dict[str, Any]]:
    """Search items shaped like GitHub's, most starred first, with nulls and non-ASCII text mixed in."""
    items = []
    for rank in range(1, count + 1):
        owner = ["freeCodeCamp", "日本語-org", "café", "torvalds", "björn"][rank % 5]
        name = f"projekt-{rank}" if rank % 7 else f"проект-{rank}"
        items.append(
            {
                "id": 1000 + rank,
                "full_name": f"{owner}/{name}",
                "html_url": f"https://github.com/{owner}/{name}",
                # GitHub sends null for a missing description, language or license.
                "description": None if rank % 3 == 0 else f"Описание №{rank} — naïve 🚀",
                "language": None if rank % 4 == 0 else ["Python", "TypeScript", "C++"][rank % 3],
                "license": (
                    None
                    if rank % 5 == 0
                    else {"key": "mit", "name": "MIT License", "spdx_id": "MIT"}
                    if rank % 2
                    else {"key": "other", "name": "Other", "spdx_id": "NOASSERTION"}
                ),
                "stargazers_count": 500_000 - rank * 1000 + stars_offset,
                "forks_count": 10_000 + rank,
                "open_issues_count": rank,
                "owner": {"login": owner},
            }
        )
    return items
