"""``BlockingHttp``: HTTP/1.1 over plain sockets, for the ``xdp47-agent`` process.

Its coroutines never suspend (every wait is a blocking socket read), so the
process drives a step with ``drive()`` and needs no event loop: asyncio, httpx
and their imports would cost a small device more memory than the agent itself
(docs/performance.md, B7). ``ssl`` is imported only for the first https URL.

Reads wait in slices of at most ``_SLICE`` seconds and call ``tick`` between
them, so a stop request (``Stopped``) or a systemd watchdog ping is served
within one slice even in the middle of a long download. One idle connection
per origin is kept alive; a kept one that the server closed meanwhile is
replaced once, for a request that did not reach it.
"""

from __future__ import annotations

import functools
import socket
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping
from typing import Any, TypeVar
from urllib.parse import urlsplit

from xdp47_agent.http import (
    BodyCut,
    ConnectionLost,
    DeadlineExceeded,
    HttpError,
    ReadTimeout,
    origin,
)

__all__ = ["BlockingHttp", "drive"]

T = TypeVar("T")
Origin = tuple[str, str, int]
_SLICE = 0.5
_BLOCK = 64 << 10
_MAX_HEAD = 64 << 10


def drive(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine that never suspends (one on ``BlockingHttp``)."""
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
    coro.close()
    raise RuntimeError("an agent step suspended outside an event loop")


def _no_tick() -> None:
    pass


@functools.lru_cache(maxsize=64)
def _route(url: str) -> tuple[Origin, str, str]:
    """The origin, request target and Host header of ``url`` (cached: an agent
    sends its heartbeats to the same URL, and parsing it cost a share of each).

    Raises:
        HttpError: not an http(s) URL with a host.
    """
    try:
        key = origin(url)
    except ValueError as exc:
        raise HttpError(str(exc)) from None
    if key[0] not in ("http", "https"):
        raise HttpError(f"scheme {key[0]!r} not supported")
    parts = urlsplit(url)
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    default = 443 if key[0] == "https" else 80
    host = key[1] if key[2] == default else f"{key[1]}:{key[2]}"
    if ":" in key[1]:  # an IPv6 literal
        host = f"[{key[1]}]" if key[2] == default else f"[{key[1]}]:{key[2]}"
    return key, target, host


@functools.lru_cache(maxsize=64)
def _head(
    method: str, url: str, headers: tuple[tuple[str, str], ...]
) -> tuple[Origin, bytes]:
    """The origin and the request head up to its Content-Length line (cached:
    a heartbeat's head differs from the last one's only in that line)."""
    key, target, host = _route(url)
    text = f"{method} {target} HTTP/1.1\r\nHost: {host}\r\n" + "".join(
        f"{name}: {value}\r\n" for name, value in headers
    )
    return key, text.encode("latin-1")


class _Conn:
    """One connection and the bytes read past the current answer's head."""

    def __init__(self, sock: socket.socket, tick: Callable[[], None]) -> None:
        self.sock = sock
        self.buf = b""
        self.reused = False
        self._tick = tick
        self._timeout: float | None = None

    def recv(self, timeout: float, deadline: float | None) -> bytes:
        """Some bytes (b"" at EOF); waits in slices so ``tick`` runs."""
        waited = 0.0
        while True:
            self._tick()
            wait = min(_SLICE, timeout - waited)
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise DeadlineExceeded("deadline passed")
                wait = min(wait, left)
            wait = max(wait, 0.001)
            if wait != self._timeout:  # each settimeout is a system call
                self.sock.settimeout(wait)
                self._timeout = wait
            try:
                return self.sock.recv(_BLOCK)
            except TimeoutError:
                waited += wait
                if waited >= timeout:
                    raise ReadTimeout(f"no byte for {timeout}s") from None
            except OSError as exc:
                raise ConnectionLost(f"{type(exc).__name__}: {exc}") from exc

    def line(self, timeout: float, deadline: float | None) -> bytes:
        while b"\r\n" not in self.buf:
            if len(self.buf) > _MAX_HEAD:
                raise HttpError("answer head too large")
            data = self.recv(timeout, deadline)
            if not data:
                raise ConnectionLost("connection closed before the answer")
            self.buf += data
        line, _, self.buf = self.buf.partition(b"\r\n")
        return line

    def head(self, timeout: float, deadline: float | None) -> list[bytes]:
        """An answer's status line and header lines, read to the empty line."""
        while (end := self.buf.find(b"\r\n\r\n")) < 0:
            if len(self.buf) > _MAX_HEAD:
                raise HttpError("answer head too large")
            data = self.recv(timeout, deadline)
            if not data:
                raise ConnectionLost("connection closed before the answer")
            self.buf += data
        if end > _MAX_HEAD:
            raise HttpError("answer head too large")
        head, self.buf = self.buf[:end], self.buf[end + 4 :]
        return head.split(b"\r\n")

    def take(self, limit: int, timeout: float, deadline: float | None) -> bytes:
        """Up to ``limit`` bytes (at least one); b"" at EOF."""
        if not self.buf:
            self.buf = self.recv(timeout, deadline)
        data, self.buf = self.buf[:limit], self.buf[limit:]
        return data

    def close(self) -> None:
        self.sock.close()


class _Answer:
    """One answer; the body is read on demand by ``chunks``."""

    def __init__(
        self,
        client: BlockingHttp,
        key: Origin,
        conn: _Conn,
        status: int,
        headers: dict[str, str],
        *,
        head_only: bool,
        timeout: float,
        deadline: float | None,
    ) -> None:
        self.status = status
        self.headers = headers
        self._client = client
        self._key = key
        self._conn: _Conn | None = conn
        self._timeout = timeout
        self._deadline = deadline
        self._chunked = "chunked" in headers.get("transfer-encoding", "").lower()
        length = headers.get("content-length", "")
        self._left: int | None = int(length) if length.isdigit() else None
        if head_only or status in (204, 304) or 100 <= status < 200:
            self._left, self._chunked = 0, False
        self._keep = headers.get("connection", "").lower() != "close" and (
            self._chunked or self._left is not None
        )

    async def chunks(self) -> AsyncIterator[bytes]:
        conn = self._conn
        if conn is None:
            return
        t, d = self._timeout, self._deadline
        if self._chunked:
            while True:
                size_line = conn.line(t, d).split(b";", 1)[0].strip()
                try:
                    size = int(size_line, 16)
                except ValueError:
                    raise HttpError("malformed chunked body") from None
                if size == 0:
                    while conn.line(t, d):  # trailers, then the empty line
                        pass
                    break
                while size:
                    data = conn.take(size, t, d)
                    if not data:
                        raise BodyCut("connection closed inside a chunk")
                    size -= len(data)
                    yield data
                conn.line(t, d)
        elif self._left is not None:
            while self._left:
                data = conn.take(min(self._left, _BLOCK), t, d)
                if not data:
                    raise BodyCut(f"connection closed with {self._left} bytes due")
                self._left -= len(data)
                yield data
        else:
            while data := conn.take(_BLOCK, t, d):
                yield data
        self._release(reuse=self._keep)

    def _release(self, *, reuse: bool) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        if reuse and not conn.buf:
            self._client.keep(self._key, conn)
        else:
            conn.close()

    async def aclose(self) -> None:
        # A body not read to its end leaves the connection mid-answer: close it.
        self._release(reuse=False)


class BlockingHttp:
    """``Http`` on blocking sockets; ``tick`` runs at least every half second
    while waiting (raise ``Stopped`` from it to abandon the request)."""

    def __init__(self, *, tick: Callable[[], None] = _no_tick) -> None:
        self._tick = tick
        self._idle: dict[Origin, _Conn] = {}
        self._ssl: Any = None

    def keep(self, key: Origin, conn: _Conn) -> None:
        old = self._idle.pop(key, None)
        if old is not None:
            old.close()
        conn.reused = True
        self._idle[key] = conn

    def close(self) -> None:
        for conn in self._idle.values():
            conn.close()
        self._idle.clear()

    def _connect(self, key: Origin, timeout: float) -> _Conn:
        scheme, host, port = key
        try:
            # An ASCII host goes to getaddrinfo as bytes: as text it would be
            # IDNA-encoded, which loads unicodedata (~1 MB) into the idle agent.
            name = host.encode("ascii") if host.isascii() else host
            sock = socket.create_connection(
                (name, port),  # type: ignore[arg-type]  # getaddrinfo takes bytes
                timeout=timeout,
            )
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if scheme == "https":
                if self._ssl is None:
                    import ssl  # only a device that speaks https pays for it

                    self._ssl = ssl.create_default_context()
                sock = self._ssl.wrap_socket(sock, server_hostname=host)
        except TimeoutError as exc:
            raise ReadTimeout(f"connect to {host}:{port}: timed out") from exc
        except OSError as exc:
            raise HttpError(f"connect to {host}:{port}: {exc}") from exc
        return _Conn(sock, self._tick)

    async def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str],
        body: bytes | None = None,
        read_timeout: float,
        deadline: float | None = None,
    ) -> _Answer:
        timeout = read_timeout
        key, head = _head(method, url, tuple(headers.items()))
        if body is None:
            payload = head + b"\r\n"
        else:
            payload = b"%bContent-Length: %d\r\n\r\n%b" % (head, len(body), body)
        while True:
            conn = self._idle.pop(key, None) or self._connect(key, timeout)
            try:
                conn.sock.sendall(payload)
                lines = conn.head(timeout, deadline)
            except (ConnectionLost, OSError) as exc:
                conn.close()
                if conn.reused:
                    continue  # the server closed the kept connection: a fresh one
                if isinstance(exc, HttpError):
                    raise
                raise HttpError(f"{type(exc).__name__}: {exc}") from exc
            except BaseException:
                conn.close()
                raise
            break
        try:
            return self._answer(conn, key, lines, method, timeout, deadline)
        except BaseException:
            conn.close()
            raise

    def _answer(
        self,
        conn: _Conn,
        key: Origin,
        lines: list[bytes],
        method: str,
        timeout: float,
        deadline: float | None,
    ) -> _Answer:
        status_line = lines[0]
        version, _, rest = status_line.partition(b" ")
        code = rest[:3]
        if not version.startswith(b"HTTP/1.") or not code.isdigit():
            raise HttpError(f"not an HTTP/1 answer: {status_line[:40]!r}")
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, sep, value = line.decode("latin-1").partition(":")
            if not sep:
                raise HttpError("malformed header line")
            name = name.strip().lower()
            value = value.strip()
            if name in headers and name != "set-cookie":
                value = f"{headers[name]}, {value}"
            headers[name] = value
        return _Answer(
            self,
            key,
            conn,
            int(code),
            headers,
            head_only=method == "HEAD",
            timeout=timeout,
            deadline=deadline,
        )
