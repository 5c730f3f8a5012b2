"""A minimal HTTP/1.1 keep-alive client for the load generator.

One ``RawClient`` owns one persistent TCP connection and sends one request at a
time on it (what a device does). It speaks just enough HTTP/1.1 for ingest's
answers (``Content-Length`` bodies, no chunking) and reconnects when the server
closes. Why not httpx: on this machine an httpx request costs the generator
~1.5 ms CPU (httpcore's pool bookkeeping dominates), which capped one generator
core at ~600 requests/s, below what the system under test serves; this client
costs a few tens of microseconds, so the generator is not the bottleneck.
The interface mirrors the part of httpx the fleet uses.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any
from urllib.parse import urlsplit

__all__ = ["RawClient", "RawError", "RawResponse"]


class RawError(OSError):
    """The connection failed or the answer was not HTTP/1.1 we understand."""


class RawResponse:
    __slots__ = ("content", "headers", "status_code")

    def __init__(self, status: int, headers: dict[str, str], content: bytes) -> None:
        self.status_code = status
        self.headers = headers
        self.content = content

    def json(self) -> Any:
        return json.loads(self.content)


class RawClient:
    """Requests to ``base_url`` over one kept-alive connection."""

    def __init__(self, base_url: str, *, timeout: float = 30.0) -> None:
        parts = urlsplit(base_url)
        if parts.scheme != "http" or parts.hostname is None:
            raise ValueError(f"only http://host:port URLs: {base_url!r}")
        self._host = parts.hostname
        self._port = parts.port or 80
        self._hostport = f"{self._host}:{self._port}".encode()
        self._timeout = timeout
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def __aenter__(self) -> RawClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
            self._reader = None

    async def post(
        self, path: str, *, content: bytes, headers: dict[str, str]
    ) -> RawResponse:
        return await self.request("POST", path, content, headers)

    async def get(self, path: str, *, headers: dict[str, str]) -> RawResponse:
        return await self.request("GET", path, b"", headers)

    async def request(
        self, method: str, path: str, body: bytes, headers: dict[str, str]
    ) -> RawResponse:
        try:
            return await asyncio.wait_for(
                self._exchange(method, path, body, headers), self._timeout
            )
        except (OSError, asyncio.IncompleteReadError, ValueError, TimeoutError) as exc:
            await self.aclose()
            if isinstance(exc, RawError):
                raise
            raise RawError(f"{type(exc).__name__}: {exc}") from exc

    async def _exchange(
        self, method: str, path: str, body: bytes, headers: dict[str, str]
    ) -> RawResponse:
        if self._writer is None:
            self._reader, self._writer = await asyncio.open_connection(
                self._host, self._port
            )
        assert self._reader is not None
        head = [f"{method} {path} HTTP/1.1".encode(), b"Host: " + self._hostport]
        head += [f"{k}: {v}".encode() for k, v in headers.items()]
        if body or method == "POST":
            head.append(b"Content-Length: %d" % len(body))
        self._writer.write(b"\r\n".join(head) + b"\r\n\r\n" + body)
        raw = await self._reader.readuntil(b"\r\n\r\n")
        lines = raw[:-4].decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        answer: dict[str, str] = {}
        for line in lines[1:]:
            key, _, value = line.partition(":")
            answer[key.strip().lower()] = value.strip()
        if "chunked" in answer.get("transfer-encoding", ""):
            raise RawError("chunked answers are not supported")
        size = int(answer.get("content-length", "0"))
        content = await self._reader.readexactly(size) if size else b""
        if answer.get("connection", "").lower() == "close":
            await self.aclose()
        return RawResponse(status, answer, content)
