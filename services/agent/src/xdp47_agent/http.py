"""The one interface the agent speaks HTTP through, and its errors.

``Http.request`` sends one request and returns the answer's status and headers
with the body still unread (``Response.chunks``), so callers bound what they
read. ``read_timeout`` bounds connecting and every read (no byte for that long:
``ReadTimeout``); ``deadline`` (``time.monotonic()`` seconds) bounds the whole
exchange, body included (``DeadlineExceeded``). Redirects are never followed:
the caller decides (``download``).

Two implementations: ``blocking.BlockingHttp`` (sockets, no event loop: the
``xdp47-agent`` process, whose steps never suspend) and
``httpx_adapter.HttpxHttp`` (an ``httpx.AsyncClient`` on an event loop: many
agents in one process, and tests that fake the control plane).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Protocol
from urllib.parse import urlsplit

__all__ = [
    "BodyCut",
    "ConnectionLost",
    "DeadlineExceeded",
    "Http",
    "HttpError",
    "ReadTimeout",
    "Response",
    "Stopped",
    "origin",
    "read_bounded",
]


class HttpError(Exception):
    """No (complete) answer: connect failure, reset, timeout, malformed answer."""


class ReadTimeout(HttpError):
    """No byte arrived within the request's ``timeout``."""


class DeadlineExceeded(HttpError):
    """The exchange did not finish before its ``deadline``."""


class ConnectionLost(HttpError):
    """The connection was reset in the middle of the body."""


class BodyCut(ConnectionLost):
    """The peer closed the connection before the body it declared was complete."""


class Stopped(BaseException):
    """The process is stopping: abandon the step (raised from I/O only, never
    from a commit, which does no HTTP)."""


class Response(Protocol):
    @property
    def status(self) -> int: ...

    @property
    def headers(self) -> Mapping[str, str]:
        """Looked up by lower-case names."""
        ...

    def chunks(self) -> AsyncIterator[bytes]: ...

    async def aclose(self) -> None: ...


class Http(Protocol):
    async def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str],
        body: bytes | None = None,
        read_timeout: float,
        deadline: float | None = None,
    ) -> Response: ...


def origin(url: str) -> tuple[str, str, int]:
    """Scheme, host and port (the scheme's default when none is given).

    Raises:
        ValueError: not a URL with a host and a valid port.
    """
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if not parts.hostname:
        raise ValueError(f"no host in {url[:80]!r}")
    port = parts.port or (443 if scheme == "https" else 80)
    return scheme, parts.hostname.lower(), port


async def read_bounded(response: Response, limit: int, what: str) -> bytes:
    """The whole body, refusing one larger than ``limit`` bytes.

    Raises:
        ValueError: the body is larger than ``limit``.
    """
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.chunks():
        size += len(chunk)
        if size > limit:
            raise ValueError(f"{what}: answer larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)
