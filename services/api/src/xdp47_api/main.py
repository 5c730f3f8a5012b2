"""``xdp47-api``: check that PostgreSQL and RabbitMQ answer, then serve the API.

A missing dependency is a one-line error and exit status 1, not a traceback and
not a fallback.
"""

from __future__ import annotations

import asyncio
import sys

import asyncpg
import uvicorn
from pydantic import ValidationError

from xdp47_api.app import create_app
from xdp47_common.adapters.amqp import connect
from xdp47_common.logging import configure_logging
from xdp47_common.settings import ControlSettings

__all__ = ["check_dependencies", "main"]

CONNECT_TIMEOUT = 10.0


async def check_dependencies(settings: ControlSettings) -> str | None:
    """Return a one-line reason when PostgreSQL or RabbitMQ is unreachable."""
    try:
        conn = await asyncpg.connect(settings.db_url, timeout=CONNECT_TIMEOUT)
        try:
            migrated = await conn.fetchval("SELECT to_regclass('tenants') IS NOT NULL")
        finally:
            await conn.close()
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        return f"PostgreSQL at XDP47_DB_URL is unreachable: {exc}"
    if not migrated:
        return "the database at XDP47_DB_URL has no schema; run xdp47-migrate first"
    try:
        connection = await asyncio.wait_for(
            connect(settings.amqp_url), timeout=CONNECT_TIMEOUT
        )
        await connection.close()
    except Exception as exc:  # aiormq raises many types for one refused connect
        return f"RabbitMQ at XDP47_AMQP_URL is unreachable: {exc or type(exc).__name__}"
    return None


SHUTDOWN_GRACE_SECONDS = 10


def main() -> None:
    try:
        configure_logging("api")
    except ValueError as exc:
        sys.exit(f"xdp47-api: {exc}")
    try:
        settings = ControlSettings()
    except ValidationError as exc:
        errors = "; ".join(
            (f"XDP47_{'_'.join(map(str, e['loc'])).upper()}: " if e["loc"] else "")
            + e["msg"]
            for e in exc.errors()
        )
        sys.exit(f"xdp47-api: invalid settings: {errors}")
    problem = asyncio.run(check_dependencies(settings))
    if problem is not None:
        sys.exit(f"xdp47-api: {problem}")
    uvicorn.run(
        create_app(settings),
        host=settings.listen_host,
        port=settings.listen_port,
        proxy_headers=True,
        log_level="info",
        log_config=None,  # keep configure_logging's structured handler
        # Live UI streams (SSE) stay open for minutes: on SIGTERM wait this long
        # for requests to finish, then close what is left and stop.
        timeout_graceful_shutdown=SHUTDOWN_GRACE_SECONDS,
    )
