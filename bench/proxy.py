"""A counting HTTP proxy on loopback: every client talks to the SQS server through one of these.

It forwards bytes unchanged in both directions (so each client keeps its own HTTP behaviour:
keep-alive or not, `Expect: 100-continue`, ...) and reads just enough of each request to tally its
SQS action: the `X-Amz-Target` header (JSON protocol) or the `Action` form field (query protocol).
A request for `/__bench__/counts` is answered by the proxy itself with the tally so far.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from collections import Counter
from collections.abc import Callable
from urllib.parse import parse_qs, urlsplit

#: Path the proxy answers itself, with the counts so far as JSON.
COUNTS_PATH = "/__bench__/counts"
#: Largest request head the proxy accepts.
MAX_HEAD_BYTES = 64 * 1024
_CHUNK = 64 * 1024


class CountingProxy:
    """Listens on 127.0.0.1 (a free port) and forwards every connection to `upstream`."""

    def __init__(self, upstream_port: int, *, upstream_host: str = "127.0.0.1") -> None:
        self._upstream = (upstream_host, upstream_port)
        self._counts: Counter[str] = Counter()
        self._connections = 0
        self._lock = threading.Lock()
        self._server = socket.create_server(("127.0.0.1", 0), backlog=1024)
        self.port = self._server.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._closed = False
        threading.Thread(target=self._accept, name=f"proxy-{self.port}", daemon=True).start()

    def counts(self) -> dict[str, int]:
        """Requests forwarded so far, by SQS action."""
        with self._lock:
            return dict(self._counts)

    def snapshot(self) -> dict[str, object]:
        """The counts, and how many upstream connections were opened for them."""
        with self._lock:
            return {"actions": dict(self._counts), "connections": self._connections}

    def close(self) -> None:
        self._closed = True
        self._server.close()

    # --- connections -----------------------------------------------------------------------------
    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        upstream = _Upstream(self._upstream, client, on_open=self._opened)
        buffer = bytearray()
        try:
            while self._relay(client, upstream, buffer):
                pass
        except OSError:
            pass
        finally:
            upstream.close()

    def _relay(self, client: socket.socket, upstream: _Upstream, buffer: bytearray) -> bool:
        """Forward one request and count it; False once this connection is done."""
        head = _read_head(client, buffer)
        if head is None:
            return False
        method, target, headers = _parse_head(head)
        if urlsplit(target).path == COUNTS_PATH:
            body = json.dumps(self.snapshot()).encode()
            client.sendall(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n"
                + f"Content-Length: {len(body)}\r\n\r\n".encode()
                + body
            )
            return False
        sock = upstream.open()
        sock.sendall(head)
        action = _target_action(headers.get("x-amz-target"))
        if action is None:
            action = _query_action(target)
        if "chunked" in headers.get("transfer-encoding", "").lower():
            # No SQS client here sends chunked requests; pass the rest through uncounted.
            self._count(action or "unknown")
            sock.sendall(buffer)
            buffer.clear()
            _pipe(client, sock)
            return False
        length = int(headers.get("content-length", "0") or 0)
        body = self._forward_body(client, sock, buffer, length, keep=action is None)
        if body is None:
            return False
        if action is None:
            action = _form_action(body, headers.get("content-type", "")) or f"{method} (no action)"
        self._count(action)
        return True

    def _opened(self) -> None:
        with self._lock:
            self._connections += 1

    def _forward_body(
        self, client: socket.socket, upstream: socket.socket, buffer: bytearray, length: int, *, keep: bool
    ) -> bytes | None:
        kept = bytearray()
        remaining = length
        while remaining > 0:
            if not buffer:
                data = client.recv(_CHUNK)
                if not data:
                    return None
                buffer += data
            piece = bytes(buffer[:remaining])
            del buffer[: len(piece)]
            upstream.sendall(piece)
            remaining -= len(piece)
            if keep:
                kept += piece
        return bytes(kept)

    def _count(self, action: str) -> None:
        with self._lock:
            self._counts[action] += 1


class _Upstream:
    """The connection to the server behind one client connection, opened on its first request."""

    def __init__(
        self, address: tuple[str, int], client: socket.socket, *, on_open: Callable[[], None]
    ) -> None:
        self._address = address
        self._client = client
        self._on_open = on_open
        self._sock: socket.socket | None = None
        self._pipe: threading.Thread | None = None

    def open(self) -> socket.socket:
        if self._sock is None:
            self._sock = socket.create_connection(self._address)
            self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._on_open()
            self._pipe = threading.Thread(target=_pipe, args=(self._sock, self._client), daemon=True)
            self._pipe.start()
        return self._sock

    def close(self) -> None:
        """End both sides: the answers still in flight reach the client first."""
        if self._sock is not None:
            _shutdown(self._sock)
        if self._pipe is not None:
            self._pipe.join(timeout=60)
        _close(self._client)
        if self._sock is not None:
            _close(self._sock)


def _read_head(sock: socket.socket, buffer: bytearray) -> bytes | None:
    while True:
        end = buffer.find(b"\r\n\r\n")
        if end >= 0:
            head = bytes(buffer[: end + 4])
            del buffer[: end + 4]
            return head
        if len(buffer) > MAX_HEAD_BYTES:
            return None
        data = sock.recv(_CHUNK)
        if not data:
            return None
        buffer += data


def _parse_head(head: bytes) -> tuple[str, str, dict[str, str]]:
    lines = head.decode("latin-1").split("\r\n")
    method, target, _ = ([*lines[0].split(" ", 2), "", ""])[:3]
    headers = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    return method, target, headers


def _target_action(target: str | None) -> str | None:
    # "AmazonSQS.SendMessageBatch" -> "SendMessageBatch"
    return target.rsplit(".", 1)[-1] if target else None


def _query_action(target: str) -> str | None:
    actions = parse_qs(urlsplit(target).query).get("Action")
    return actions[0] if actions else None


def _form_action(body: bytes, content_type: str) -> str | None:
    if "x-www-form-urlencoded" not in content_type:
        return None
    actions = parse_qs(body.decode("utf-8", "replace")).get("Action")
    return actions[0] if actions else None


def _pipe(source: socket.socket, sink: socket.socket) -> None:
    try:
        while data := source.recv(_CHUNK):
            sink.sendall(data)
    except OSError:
        pass
    finally:
        _shutdown(sink)


def _shutdown(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_WR)


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.close()
