"""``xdp47-scheduler``: check the dependencies, run the scheduler until a signal.

Fails fast with one line on stderr (exit 1) when PostgreSQL or RabbitMQ cannot be
reached or the schema is missing, and with exit 2 on invalid configuration.
SIGTERM/SIGINT stop consuming, let the timer's tick finish and close cleanly.
"""

from __future__ import annotations

import asyncio
import logging
import signal

import uvloop

from xdp47_common import tracing
from xdp47_common.adapters.amqp import connect
from xdp47_common.cli import (
    EXIT_UNAVAILABLE,
    command_line,
    fail,
    load_settings,
    muted,
    prepare_heap_for_serving,
    where,
)
from xdp47_common.logging import configure_logging
from xdp47_common.settings import ControlSettings
from xdp47_scheduler.pg import database_problem
from xdp47_scheduler.service import Scheduler
from xdp47_scheduler.settings import SchedulerSettings

__all__ = ["StartupError", "main", "preflight"]

log = logging.getLogger("xdp47_scheduler")


class StartupError(RuntimeError):
    """A dependency is missing; the message is the one line the operator sees."""


async def preflight(settings: ControlSettings) -> None:
    """Raise ``StartupError`` unless PostgreSQL (with schema) and RabbitMQ answer."""
    db = where(settings.db_url, "XDP47_DB_URL")
    broker = where(settings.amqp_url, "XDP47_AMQP_URL")
    problem = await database_problem(settings.db_url, db)
    if problem is not None:
        raise StartupError(problem)
    try:
        amqp = await connect(settings.amqp_url, connect_timeout=5)
    except Exception as exc:  # aiormq raises many types for an unreachable broker
        raise StartupError(
            f"cannot reach RabbitMQ at {broker}: {exc.__class__.__name__}"
        ) from exc
    await amqp.close()


async def _serve(settings: SchedulerSettings) -> None:
    with muted("aiormq", "aio_pika"):
        await preflight(settings)
    try:
        tracing.configure("xdp47-scheduler")  # on when OTEL_TRACES_EXPORTER is set
    except ValueError as exc:
        raise StartupError(str(exc)) from exc
    scheduler = Scheduler(settings)
    await scheduler.start()
    prepare_heap_for_serving()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("signal received, stopping")
    await scheduler.stop()
    tracing.shutdown()  # export the spans still buffered


PROG = "xdp47-scheduler"


def main() -> None:
    command_line(PROG, "Run the XDP47 scheduler: heartbeats, rollout commands, gates.")
    try:
        configure_logging("scheduler")
    except ValueError as exc:  # a bad XDP47_LOG_* value
        fail(PROG, str(exc))
    settings = load_settings(PROG, SchedulerSettings)
    try:
        # uvloop, as under uvicorn: the consumer's per-message and per-query
        # event-loop work costs less than on asyncio's default loop.
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(_serve(settings))
    except StartupError as exc:
        fail(PROG, str(exc), EXIT_UNAVAILABLE)
