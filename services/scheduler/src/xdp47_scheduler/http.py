"""A tiny HTTP port for probes and metrics: ``/livez``, ``/readyz``, ``/metrics``.

The scheduler has no API, so this is a bare asyncio server (no web framework in
the scheduler's dependencies). One request per connection, GET only.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY

from xdp47_common.plumbing_metrics import exposition

__all__ = ["ProbeServer"]

log = logging.getLogger(__name__)

Ready = Callable[[], Awaitable[bool]]

_REASONS = {200: "OK", 404: "Not Found", 405: "Method Not Allowed", 503: "Unavailable"}


class ProbeServer:
    """Serve the probes on ``host:port`` until ``close``."""

    def __init__(self, addr: str, ready: Ready) -> None:
        host, _, port = addr.rpartition(":")
        self._host = host or "0.0.0.0"
        self._port = int(port)
        self._ready = ready
        self._server: asyncio.Server | None = None

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, self._host, self._port)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _answer(self, method: str, path: str) -> tuple[int, str, bytes]:
        if method != "GET":
            return 405, "text/plain", b"GET only\n"
        path = path.split("?", 1)[0]
        if path in ("/livez", "/healthz"):
            return 200, "application/json", b'{"status":"ok"}'
        if path == "/readyz":
            try:
                ok = await asyncio.wait_for(self._ready(), timeout=2.0)
            except Exception:  # a failing check is an answer, not an error
                ok = False
            body = b'{"status":"ok"}' if ok else b'{"status":"unavailable"}'
            return (200 if ok else 503), "application/json", body
        if path == "/metrics":
            return 200, CONTENT_TYPE_LATEST, exposition(REGISTRY)
        return 404, "text/plain", b"not found\n"

    async def _serve(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=5)
            method, path, *_ = head.decode("latin-1").split(" ", 2)
            status, ctype, body = await self._answer(method, path)
            writer.write(
                f"HTTP/1.1 {status} {_REASONS[status]}\r\nContent-Type: {ctype}\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
                + body
            )
            await writer.drain()
        except (OSError, ValueError, TimeoutError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
