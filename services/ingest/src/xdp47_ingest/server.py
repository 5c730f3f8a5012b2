"""The HTTP server that runs the ingest app: uvicorn (default) or granian.

``XDP47_INGEST_SERVER`` picks it. Both serve the same ASGI app in this one
process, on uvloop: HTTP/1.1 with keep-alive (idle connections closed after
``KEEP_ALIVE_S``), no access log, log records through the process's structured
handler (``configure_logging``); uvicorn sends no ``Server`` header (granian
always sends ``Server: granian``). Both stop on SIGTERM or
SIGINT by refusing new connections, finishing the requests in flight, then
running the app's lifespan shutdown (the batcher's last publish, the pools).

uvicorn parses HTTP and writes answers in Python (httptools' callbacks, uvloop's
transports) on the one thread; granian does it in Rust, on a runtime thread of
its own, and hands each request to the Python thread through its ASGI bridge.
Measured here (B1, docs/performance.md), granian answers more requests per
second of wall time and with a lower p99 (two threads at work), but it is no
cheaper per CPU-second: end to end within the rounds' spread of uvicorn, and
its floor (a bare app) costs more CPU per request, each request crossing
between the threads twice. CPU per heartbeat is what a fleet's bill counts, so
uvicorn is the default. Under uvicorn, an app with a device lane
(``app.state.device_lane``) has the usual device request answered in uvicorn's
protocol (``xdp47_ingest.device_lane``). Either way its keep-alive timer is armed
once per idle period, not once per request (``xdp47_ingest.keep_alive``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import uvicorn
from fastapi import FastAPI

from xdp47_ingest.device_lane import DeviceLane, device_protocol
from xdp47_ingest.keep_alive import KeepAliveProtocol

__all__ = ["APP_FAILED", "KEEP_ALIVE_S", "Serve", "Server", "runner", "serve"]

Server = Literal["uvicorn", "granian"]
# The exit status when the app could not start (uvicorn's).
APP_FAILED = 3
# Devices keep their connection open between heartbeats; one idle this long is
# closed.
KEEP_ALIVE_S = 75
Serve = Callable[[FastAPI, str, int], None]


def runner(server: Server) -> Serve:
    """What serves an app on ``host:port`` with ``server`` until SIGTERM or
    SIGINT, its modules imported now: before the caller freezes its heap, and
    granian's (~4 MiB resident) only in a process that runs it."""
    if server == "granian":
        from xdp47_ingest.granian_server import serve_granian

        return serve_granian
    return _uvicorn


def serve(app: FastAPI, server: Server, host: str, port: int) -> None:
    """Serve ``app`` on ``host:port`` with ``server`` (``runner(server)``)."""
    runner(server)(app, host, port)


def _uvicorn(app: FastAPI, host: str, port: int) -> None:
    # The app's device lane, when it has one: uvicorn's httptools protocol
    # answering the usual device request itself (``device_lane``).
    lane: DeviceLane | None = getattr(getattr(app, "state", None), "device_lane", None)
    uvicorn.run(
        app,
        host=host,
        port=port,
        http=device_protocol(lane) if lane is not None else KeepAliveProtocol,
        access_log=False,
        log_config=None,  # keep configure_logging's structured handler
        timeout_keep_alive=KEEP_ALIVE_S,
        # Ingest uses no client address (devices are known by their
        # credential), so X-Forwarded-* is not parsed on every request.
        proxy_headers=False,
        server_header=False,
    )
