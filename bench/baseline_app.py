"""The B1/B2 baseline: an EMPTY FastAPI handler under ingest's uvicorn setup.

The same routes as ingest's device endpoints (POST heartbeat answering 202, GET
desired answering 304), no body parsing, no database, no broker: what serving a
request costs in this stack before any work. ``uvicorn.run`` gets the same
arguments as ``xdp47-ingest`` (uvloop and httptools come from
``uvicorn[standard]`` the same way).

    uv run python bench/baseline_app.py --port 8099
"""

from __future__ import annotations

import argparse

import uvicorn
from fastapi import FastAPI, Response

__all__ = ["create_app", "main"]


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


def main() -> None:
    parser = argparse.ArgumentParser(description="empty FastAPI baseline")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
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
