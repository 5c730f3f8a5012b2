"""``xdp47-webhooks``: check the dependencies, deliver webhooks until a signal.

Exit 1 with one line on stderr when PostgreSQL (with its schema) or RabbitMQ
cannot be reached, 2 on invalid configuration; SIGTERM/SIGINT stop consuming
(unacked jobs go back to their queue) and close cleanly.
"""

from __future__ import annotations

import asyncio
import logging
import signal

import uvloop

from xdp47_common.cli import (
    EXIT_UNAVAILABLE,
    command_line,
    fail,
    load_settings,
    muted,
)
from xdp47_common.logging import configure_logging
from xdp47_scheduler.main import StartupError, preflight
from xdp47_scheduler.webhooks.service import WebhookWorker
from xdp47_scheduler.webhooks.settings import WebhookSettings

__all__ = ["main"]

log = logging.getLogger("xdp47_scheduler.webhooks")

PROG = "xdp47-webhooks"


async def _serve(settings: WebhookSettings) -> None:
    with muted("aiormq", "aio_pika"):
        await preflight(settings)
    worker = WebhookWorker(settings)
    await worker.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("signal received, stopping")
    await worker.stop()


def main() -> None:
    command_line(
        PROG,
        "Deliver XDP47 rollout events to webhook subscriptions.",
        distribution="xdp47-scheduler",
    )
    try:
        configure_logging("webhooks")
    except ValueError as exc:
        fail(PROG, str(exc))
    settings = load_settings(PROG, WebhookSettings)
    try:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(_serve(settings))
    except StartupError as exc:
        fail(PROG, str(exc), EXIT_UNAVAILABLE)
