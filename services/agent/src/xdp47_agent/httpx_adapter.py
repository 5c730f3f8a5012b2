"""``HttpxHttp``: the agent's ``Http`` on a shared ``httpx.AsyncClient``.

For a process that runs many agents on one event loop (the demo fleet) and for
tests that fake the control plane with an httpx transport. httpx is not a
dependency of the agent: only a caller that has it imports this module.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Mapping

import httpx

from xdp47_agent.http import (
    BodyCut,
    ConnectionLost,
    DeadlineExceeded,
    HttpError,
    ReadTimeout,
)

__all__ = ["HttpxHttp"]


def _left(deadline: float | None) -> float | None:
    if deadline is None:
        return None
    left = deadline - time.monotonic()
    if left <= 0:
        raise DeadlineExceeded("deadline passed")
    return left


def _mapped(exc: Exception) -> HttpError:
    if isinstance(exc, TimeoutError):
        return DeadlineExceeded("deadline passed")
    if isinstance(exc, httpx.TimeoutException):
        return ReadTimeout(type(exc).__name__)
    if isinstance(exc, httpx.RemoteProtocolError):
        return BodyCut(f"{type(exc).__name__}: {exc}")
    if isinstance(exc, httpx.ReadError):
        return ConnectionLost(f"{type(exc).__name__}: {exc}")
    return HttpError(f"{type(exc).__name__}: {exc}")


class _Answer:
    def __init__(self, response: httpx.Response, deadline: float | None) -> None:
        self.status = response.status_code
        self.headers: Mapping[str, str] = response.headers
        self._response = response
        self._deadline = deadline

    async def chunks(self) -> AsyncIterator[bytes]:
        stream = self._response.aiter_bytes()
        while True:
            try:
                async with asyncio.timeout(_left(self._deadline)):
                    chunk = await anext(stream)
            except StopAsyncIteration:
                return
            except (TimeoutError, httpx.HTTPError) as exc:
                raise _mapped(exc) from exc
            yield chunk

    async def aclose(self) -> None:
        await self._response.aclose()


class HttpxHttp:
    """``Http`` over ``client`` (owned and closed by the caller)."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

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
        try:
            request = self.client.build_request(
                method, url, headers=dict(headers), content=body, timeout=read_timeout
            )
            async with asyncio.timeout(_left(deadline)):
                response = await self.client.send(
                    request, stream=True, follow_redirects=False
                )
        except (TimeoutError, httpx.HTTPError, httpx.InvalidURL) as exc:
            raise _mapped(exc) from exc
        return _Answer(response, deadline)
