"""``KeepAliveProtocol``: uvicorn's keep-alive rule with one timer per idle period.

A connection idle for ``timeout_keep_alive`` since its last answer is closed; one
that keeps sending, or whose request takes longer than that, is not; and a
connection that keeps sending keeps the timer it armed instead of making one per
request. On real sockets, with a short keep-alive."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any, ClassVar

import pytest
import uvicorn

from tests.support.processes import free_port
from tests.support.waiting import until
from tests.support.wire import Wire, connect
from xdp47_ingest.keep_alive import KeepAliveProtocol

KEEP_ALIVE = 1.0
LONG_KEEP_ALIVE = 2.0


class _App:
    """Answers 200 at once; ``/slow`` only once ``release`` is set."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.slow_started = asyncio.Event()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        if scope["path"] == "/slow":
            self.slow_started.set()
            await self.release.wait()
        headers = [(b"content-length", b"2")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"ok"})


@contextlib.asynccontextmanager
async def _serving(keep_alive: float) -> AsyncIterator[tuple[uvicorn.Server, _App]]:
    app = _App()
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=free_port(),
        http=KeepAliveProtocol,
        lifespan="off",
        log_config=None,
        access_log=False,
        timeout_keep_alive=keep_alive,  # type: ignore[arg-type]
        timeout_graceful_shutdown=10,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    await until(lambda: server.started, what="uvicorn started")
    try:
        yield server, app
    finally:
        app.release.set()  # a test that failed early leaves nothing waiting
        for conn in _Conn.opened:
            await conn.close()
        _Conn.opened.clear()
        server.should_exit = True
        await task


@pytest.fixture
async def served() -> AsyncIterator[tuple[uvicorn.Server, _App]]:
    async with _serving(KEEP_ALIVE) as serving:
        yield serving


@pytest.fixture
async def served_long() -> AsyncIterator[tuple[uvicorn.Server, _App]]:
    """A keep-alive long enough that a busy machine still sends well within it
    (a stall of the test's own event loop that long would close it)."""
    async with _serving(LONG_KEEP_ALIVE) as serving:
        yield serving


class _Conn:
    """A ``Wire`` that remembers when its last answer came."""

    opened: ClassVar[list[Wire]] = []  # closed by the fixture

    def __init__(self, wire: Wire) -> None:
        self.wire = wire
        self.answered_at = 0.0
        _Conn.opened.append(wire)

    async def get(self, path: str = "/") -> bytes:
        await self.wire.send(f"GET {path} HTTP/1.1\r\nHost: t\r\n\r\n".encode())
        answer = await self.wire.answer()
        self.answered_at = asyncio.get_running_loop().time()
        return b"%d %s" % (answer.status, answer.body)

    async def closed(self) -> bool:
        return await self.wire.closed()


async def _connect(server: uvicorn.Server) -> _Conn:
    return _Conn(await connect(server.config.port))


def _protocol(server: uvicorn.Server) -> KeepAliveProtocol:
    (proto,) = server.server_state.connections
    assert isinstance(proto, KeepAliveProtocol)
    return proto


async def test_an_idle_connection_is_closed_after_the_keep_alive(
    served: tuple[uvicorn.Server, _App],
) -> None:
    server, _ = served
    conn = await _connect(server)
    assert await conn.get() == b"200 ok"
    assert await conn.closed()
    idle = asyncio.get_running_loop().time() - conn.answered_at
    assert idle >= KEEP_ALIVE - 0.01
    await until(lambda: not server.server_state.connections, what="connection gone")


async def test_a_connection_that_keeps_sending_stays_with_one_timer(
    served_long: tuple[uvicorn.Server, _App],
) -> None:
    """Requests back to back for more than two keep-alives: each timer fires
    while the connection is busy or idle for less, and the next answer or the
    timer itself arms the one after; between, the requests keep the timer
    they found."""
    server, _ = served_long
    conn = await _connect(server)
    await conn.get()
    first = _protocol(server).timeout_keep_alive_task
    assert first is not None
    started = conn.answered_at
    timers = [first]  # all kept alive: their ids are distinct objects' ids
    while conn.answered_at < started + 2.2 * LONG_KEEP_ALIVE:
        sent_after = asyncio.get_running_loop().time() - conn.answered_at
        try:
            assert await conn.get() == b"200 ok"
        except (asyncio.IncompleteReadError, ConnectionError):
            # Closed: only a machine too busy to send in time may see that.
            assert sent_after >= LONG_KEEP_ALIVE
            pytest.skip("the request went out after the keep-alive")
        task = _protocol(server).timeout_keep_alive_task
        assert task is not None
        timers.append(task)
    # One timer per keep-alive period (and one armed for the rest of the
    # last), not one per request as uvicorn's.
    periods = (conn.answered_at - started) / LONG_KEEP_ALIVE
    distinct = len({id(t) for t in timers})
    assert len(timers) >= 6
    assert distinct <= 2 + int(periods)
    assert distinct < len(timers)


async def test_a_request_longer_than_the_keep_alive_is_not_cut(
    served: tuple[uvicorn.Server, _App],
) -> None:
    server, app = served
    conn = await _connect(server)
    await conn.get()  # arms the timer
    armed_at = conn.answered_at
    slow = asyncio.create_task(conn.get("/slow"))
    await app.slow_started.wait()
    # The timer armed by the first answer fires while /slow is answered.
    await until(
        lambda: _protocol(server).timeout_keep_alive_task is None,
        what="the first timer fired",
    )
    assert asyncio.get_running_loop().time() >= armed_at + KEEP_ALIVE - 0.01
    app.release.set()
    assert await slow == b"200 ok"
    assert await conn.get() == b"200 ok"  # still open
