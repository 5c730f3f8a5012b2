"""``xdp47-ingest``: check the broker and the database, then serve HTTP.

A missing dependency at start is a one-line message and exit status 2, not a
traceback: the supervisor restarts the process and the operator sees why.
"""

from __future__ import annotations

import asyncio
import sys

import asyncpg
import uvicorn

from xdp47_common.adapters.amqp import connect
from xdp47_common.logging import configure_logging
from xdp47_common.urls import describe_url
from xdp47_ingest.app import create_app
from xdp47_ingest.settings import IngestSettings

__all__ = ["main", "preflight"]

_PREFLIGHT_TIMEOUT = 5.0


class Unreachable(RuntimeError):
    """A dependency did not answer at start."""


async def preflight(settings: IngestSettings) -> None:
    """Connect once to PostgreSQL and RabbitMQ.

    Raises:
        Unreachable: naming the first dependency that did not answer.
    """
    try:
        conn = await asyncpg.connect(settings.db_url, timeout=_PREFLIGHT_TIMEOUT)
        await conn.close()
    except Exception as exc:
        raise Unreachable(
            f"cannot reach PostgreSQL at {describe_url(settings.db_url)}: {exc!r}"
        ) from exc
    try:
        amqp = await connect(settings.amqp_url, connect_timeout=_PREFLIGHT_TIMEOUT)
        await amqp.close()
    except Exception as exc:
        raise Unreachable(
            f"cannot reach RabbitMQ at {describe_url(settings.amqp_url)}: {exc!r}"
        ) from exc


def main() -> None:
    """Console entry point."""
    try:
        configure_logging("ingest")
    except ValueError as exc:
        sys.stderr.write(f"xdp47-ingest: {exc}\n")
        raise SystemExit(2) from None
    settings = IngestSettings()
    try:
        asyncio.run(preflight(settings))
    except Unreachable as exc:
        sys.stderr.write(f"xdp47-ingest: {exc}\n")
        raise SystemExit(2) from None
    uvicorn.run(
        create_app(settings),
        host=settings.listen_host,
        port=settings.listen_port,
        access_log=False,
        log_config=None,  # keep configure_logging's structured handler
        timeout_keep_alive=75,  # devices keep connections alive between heartbeats
        # Ingest uses no client address (devices are known by their credential),
        # so X-Forwarded-* is not parsed on every request; no Server header.
        proxy_headers=False,
        server_header=False,
    )
