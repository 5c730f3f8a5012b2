"""ingest on granian's embedded server (``XDP47_INGEST_SERVER=granian``).

Its HTTP runtime (Rust, one thread) runs in ingest's process and its ASGI
bridge on this process's uvloop event loop, so the process, its signals, its
frozen heap and its CPU figures are the same as under uvicorn
(``xdp47_ingest.server`` says what both servers share, and why uvicorn is the
default).
"""

from __future__ import annotations

import asyncio
import logging
import signal

import uvloop
from fastapi import FastAPI
from granian.constants import HTTPModes, Interfaces
from granian.errors import FatalError
from granian.http import HTTP1Settings
from granian.log import LogLevels
from granian.server.embed import Server as EmbeddedGranian

from xdp47_ingest.server import APP_FAILED, KEEP_ALIVE_S

__all__ = ["serve_granian"]

# Requests granian hands to the Python thread at once (its ``backpressure``;
# uvicorn has no such bound): enough for the batcher to fill a batch from the
# devices of many connections.
_IN_FLIGHT = 1024
# granian's loggers hand their records to the root logger's handler instead of
# a plain-text handler of their own.
_GRANIAN_LOGGING = {
    "handlers": {},
    "loggers": {
        "_granian": {"handlers": [], "propagate": True},
        "granian.access": {"handlers": [], "propagate": True},
    },
}


def serve_granian(app: FastAPI, host: str, port: int) -> None:
    """Serve ``app`` on ``host:port`` until SIGTERM or SIGINT."""
    uvloop.run(_granian(app, host, port))


async def _granian(app: FastAPI, host: str, port: int) -> None:
    server = EmbeddedGranian(
        app,
        address=host,
        port=port,
        interface=Interfaces.ASGI,
        http=HTTPModes.http1,
        websockets=False,
        runtime_threads=1,
        backlog=_IN_FLIGHT,
        backpressure=_IN_FLIGHT,
        # hyper's header read timeout also bounds a kept-alive connection's
        # wait for its next request.
        http1_settings=HTTP1Settings(
            keep_alive=True, header_read_timeout=KEEP_ALIVE_S * 1000
        ),
        log_access=False,
        log_level=_granian_level(),
        log_dictconfig=_GRANIAN_LOGGING,
    )
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, server.stop)
    try:
        await server.serve()
    except FatalError:
        failed = True
    else:
        failed = bool(server.interrupt_children)
    if failed:
        # The app's lifespan failed to start (or its worker ended): granian
        # has logged why; exit as uvicorn does then, not 0.
        raise SystemExit(APP_FAILED)


def _granian_level() -> LogLevels:
    """The root logger's level (``XDP47_LOG_LEVEL``) as granian names it: its
    logger has a level of its own, which the root's does not override."""
    name = logging.getLevelName(logging.getLogger().getEffectiveLevel()).lower()
    return LogLevels(name) if name in LogLevels.__members__ else LogLevels.info
