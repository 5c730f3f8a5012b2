"""``xdp47-api``: check that PostgreSQL and RabbitMQ answer, then serve the API.

A missing dependency is a one-line error and exit status 1, not a traceback and
not a fallback.
"""

from __future__ import annotations

import asyncio

import uvicorn

from xdp47_api.app import create_app
from xdp47_common import tracing
from xdp47_common.adapters.amqp import connect
from xdp47_common.adapters.pg_probe import (
    DatabaseUnreachable,
    SchemaMissing,
    check_schema,
)
from xdp47_common.cli import (
    EXIT_UNAVAILABLE,
    check_can_listen,
    command_line,
    fail,
    load_settings,
    muted,
)
from xdp47_common.logging import configure_logging
from xdp47_common.settings import ControlSettings

__all__ = ["check_dependencies", "main"]

CONNECT_TIMEOUT = 10.0


async def check_dependencies(settings: ControlSettings) -> str | None:
    """Return a one-line reason when PostgreSQL or RabbitMQ is unreachable."""
    try:
        await check_schema(
            settings.db_url, connect_timeout=CONNECT_TIMEOUT, table="tenants"
        )
    except DatabaseUnreachable as exc:
        return f"PostgreSQL at XDP47_DB_URL is unreachable: {exc}"
    except SchemaMissing:
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


PROG = "xdp47-api"


def main() -> None:
    command_line(PROG, "Serve the XDP47 REST API and operator UI.")
    try:
        configure_logging("api")
    except ValueError as exc:
        fail(PROG, str(exc))
    settings = load_settings(PROG, ControlSettings)
    with muted("aiormq", "aio_pika"):
        problem = asyncio.run(check_dependencies(settings))
    if problem is not None:
        fail(PROG, problem, EXIT_UNAVAILABLE)
    busy = check_can_listen(
        settings.listen_host, settings.listen_port, "XDP47_LISTEN_ADDR"
    )
    if busy is not None:
        fail(PROG, busy, EXIT_UNAVAILABLE)
    try:
        tracing.configure("xdp47-api")  # on when OTEL_TRACES_EXPORTER is set
    except ValueError as exc:
        fail(PROG, str(exc))
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
    tracing.shutdown()  # export the spans still buffered
