"""The B1/B2 baseline: an EMPTY FastAPI handler under ingest's uvicorn setup; and
the server floors: a bare ASGI app under each server ingest can run on.

The baseline has the same routes as ingest's device endpoints (POST heartbeat
answering 202, GET desired answering 304), no body parsing, no database, no
broker: what serving a request costs in this stack before any work.
``uvicorn.run`` gets the same arguments as ``xdp47-ingest`` did when the
baseline was set (uvloop and httptools come from ``uvicorn[standard]`` the same
way); it stays as it is, the yardstick the targets name.

``--app raw`` is the floor of a server: a plain ASGI callable that reads the
body and answers with a fixed heartbeat-sized JSON body (202, 304 for GET),
served exactly as ingest serves (``xdp47_ingest.server.runner``, ``--server
uvicorn|granian``): what the server and the event loop cost per request with
no framework and no work at all.

    uv run python bench/baseline_app.py --port 8099
    uv run python bench/baseline_app.py --port 8099 --app raw --server granian
"""

from __future__ import annotations

import argparse
import gc
from typing import Any

import uvicorn
from fastapi import FastAPI, Response

from xdp47_ingest.server import runner

__all__ = ["create_app", "main", "raw_app"]

# About the size of ingest's answer to a heartbeat ("nothing to do").
_ANSWER = (
    b'{"action":"none","artifact_id":null,"version":null,"uri":null,'
    b'"sha256":null,"size":null,"signature":null,'
    b'"server_time":"2026-12-03T19:00:00.000000Z"}'
)
_HEADERS = [
    (b"content-type", b"application/json"),
    (b"content-length", str(len(_ANSWER)).encode()),
]


def create_app() -> FastAPI:
    app = FastAPI(title="empty baseline")

    @app.post("/api/devices/{device_id}/heartbeat", status_code=202)
    async def heartbeat(device_id: str) -> Response:
        return Response(status_code=202)

    @app.get("/api/devices/{device_id}/desired")
    async def desired(device_id: str) -> Response:
        return Response(status_code=304)

    @app.get("/livez")
    async def livez() -> Response:
        return Response(status_code=200)

    return app


async def raw_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The server floor: lifespan accepted, every request read and answered."""
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    more = True
    while more:
        more = (await receive()).get("more_body", False)
    if scope["method"] == "POST":
        start = {"type": "http.response.start", "status": 202, "headers": _HEADERS}
        body = _ANSWER
    else:
        status = 200 if scope["path"] == "/livez" else 304
        start = {"type": "http.response.start", "status": status, "headers": []}
        body = b""
    await send(start)
    await send({"type": "http.response.body", "body": body})


def main() -> None:
    parser = argparse.ArgumentParser(description="empty FastAPI baseline")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--app", choices=("fastapi", "raw"), default="fastapi")
    parser.add_argument("--server", choices=("uvicorn", "granian"), default="uvicorn")
    args = parser.parse_args()
    if args.app == "raw":
        serve = runner(args.server)
        gc.collect()
        gc.freeze()  # as ingest does before serving
        serve(raw_app, args.host, args.port)  # type: ignore[arg-type]
        return
    uvicorn.run(
        create_app(),
        host=args.host,
        port=args.port,
        access_log=False,
        log_config=None,
        timeout_keep_alive=75,
    )


if __name__ == "__main__":
    main()
