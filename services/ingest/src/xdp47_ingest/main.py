"""``xdp47-ingest``: check the broker and the database, then serve HTTP.

A missing dependency at start is a one-line message and exit status 2, not a
traceback: the supervisor restarts the process and the operator sees why.
"""

from __future__ import annotations

import asyncio

from xdp47_common import tracing
from xdp47_common.adapters.amqp import connect
from xdp47_common.cli import (
    EXIT_CONFIG,
    check_can_listen,
    command_line,
    fail,
    load_settings,
    muted,
    prepare_heap_for_serving,
    where,
)
from xdp47_common.logging import configure_logging
from xdp47_ingest import pg
from xdp47_ingest.app import create_app
from xdp47_ingest.server import runner
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
    db = where(settings.db_url, "XDP47_DB_URL")
    broker = where(settings.amqp_url, "XDP47_AMQP_URL")
    try:
        conn = await pg.connect(settings.db_url, connect_timeout=_PREFLIGHT_TIMEOUT)
        await conn.close()
    except Exception as exc:
        raise Unreachable(f"cannot reach PostgreSQL at {db}: {exc!r}") from exc
    try:
        amqp = await connect(settings.amqp_url, connect_timeout=_PREFLIGHT_TIMEOUT)
        await amqp.close()
    except Exception as exc:
        raise Unreachable(f"cannot reach RabbitMQ at {broker}: {exc!r}") from exc


PROG = "xdp47-ingest"


def main() -> None:
    """Console entry point."""
    command_line(PROG, "Serve the XDP47 device-facing heartbeat endpoint.")
    try:
        configure_logging("ingest")
    except ValueError as exc:
        fail(PROG, str(exc))
    settings = load_settings(PROG, IngestSettings)
    try:
        with muted("aiormq", "aio_pika"):
            asyncio.run(preflight(settings))
    except Unreachable as exc:
        fail(PROG, str(exc), EXIT_CONFIG)
    busy = check_can_listen(
        settings.listen_host, settings.listen_port, "XDP47_LISTEN_ADDR"
    )
    if busy is not None:
        fail(PROG, busy, EXIT_CONFIG)
    try:
        tracing.configure("xdp47-ingest")  # on when OTEL_TRACES_EXPORTER is set
    except ValueError as exc:
        fail(PROG, str(exc))
    app = create_app(settings)
    serve = runner(settings.ingest_server)
    # (With tracing on, its SDK and exporter modules are frozen too: ~20 µs
    # less per heartbeat there.)
    prepare_heap_for_serving()
    serve(app, settings.listen_host, settings.listen_port)
    tracing.shutdown()  # export the spans still buffered
