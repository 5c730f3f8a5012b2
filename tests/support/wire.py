"""One raw HTTP/1.1 connection for tests that need the wire itself: several
requests in one write (pipelining), answers read as they come, and whether the
server closed the connection."""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import dataclass
from typing import Any

__all__ = ["Answer", "Wire", "connect"]


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class Wire:
    """One TCP connection speaking raw HTTP/1.1 (several requests per write)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.reader = reader
        self.writer = writer

    async def send(self, *requests: bytes) -> None:
        self.writer.write(b"".join(requests))
        await self.writer.drain()

    async def answer(self) -> Answer:
        head = await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), 30)
        lines = head[:-4].decode("latin-1").split("\r\n")
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        size = int(headers.get("content-length", "0"))
        body = await self.reader.readexactly(size) if size else b""
        return Answer(int(lines[0].split(" ", 2)[1]), headers, body)

    async def closed(self) -> bool:
        return await asyncio.wait_for(self.reader.read(), 30) == b""

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(OSError):
            await self.writer.wait_closed()


async def connect(port: int, host: str = "127.0.0.1") -> Wire:
    """A ``Wire`` to ``host:port``."""
    reader, writer = await asyncio.open_connection(host, port)
    return Wire(reader, writer)
