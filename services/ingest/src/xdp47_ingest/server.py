"""The HTTP server that runs the ingest app: uvicorn (default) or granian.

``XDP47_INGEST_SERVER`` picks it. Both serve the same ASGI app in this one
process, on uvloop: HTTP/1.1 with keep-alive (idle connections closed after
``KEEP_ALIVE_S``), no access log, no ``Server`` header, log records through the
process's structured handler (``configure_logging``). Both stop on SIGTERM or
SIGINT by refusing new connections, finishing the requests in flight, then
running the app's lifespan shutdown (the batcher's last publish, the pools).

uvicorn parses HTTP and writes answers in Python (httptools' callbacks, uvloop's
transports) on the one thread; granian does it in Rust, on a runtime thread of
its own, and hands each request to the Python thread through its ASGI bridge.
Measured here (B1, docs/performance.md), granian answers more requests per
second of wall time and with a lower p99 (two threads at work), but spends more
CPU per request than uvicorn: each request crosses between the threads twice.
Per CPU-second, which is what a fleet's bill counts, uvicorn is the default.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from typing import Literal

import uvicorn
import uvloop
from fastapi import FastAPI
from granian.constants import HTTPModes, Interfaces
from granian.errors import FatalError
from granian.http import HTTP1Settings
from granian.log import LogLevels
from granian.server.embed import Server as EmbeddedGranian

__all__ = ["APP_FAILED", "KEEP_ALIVE_S", "Server", "serve"]

Server = Literal["uvicorn", "granian"]
# The exit status when the app could not start (uvicorn's).
APP_FAILED = 3
# Devices keep their connection open between heartbeats; one idle this long is
# closed.
KEEP_ALIVE_S = 75
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


def serve(app: FastAPI, server: Server, host: str, port: int) -> None:
    """Serve ``app`` on ``host:port`` with ``server`` until SIGTERM or SIGINT."""
    if server == "granian":
        uvloop.run(_granian(app, host, port))
        return
    uvicorn.run(
        app,
        host=host,
        port=port,
        access_log=False,
        log_config=None,  # keep configure_logging's structured handler
        timeout_keep_alive=KEEP_ALIVE_S,
        # Ingest uses no client address (devices are known by their
        # credential), so X-Forwarded-* is not parsed on every request.
        proxy_headers=False,
        server_header=False,
    )


async def _granian(app: FastAPI, host: str, port: int) -> None:
    # granian's embedded server: its HTTP runtime in this process and its ASGI
    # bridge on this event loop, so the process, its signals, its frozen heap
    # and its CPU figures are the same as under uvicorn.
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
