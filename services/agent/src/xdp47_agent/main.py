"""``xdp47-agent``: run one agent from the environment until SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import logging
import os
import signal

import httpx

from xdp47_agent.agent import Agent
from xdp47_agent.config import AgentConfig, load_config
from xdp47_agent.sdnotify import notify, watchdog_interval
from xdp47_common.cli import command_line, fail, load_settings
from xdp47_common.redact import configure_plain_logging

__all__ = ["main", "serve"]

log = logging.getLogger("xdp47_agent")
_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


async def _watchdog(every: float) -> None:
    # Pinged from the event loop on purpose: a wedged loop stops the pings and
    # systemd restarts the agent.
    while True:
        notify("WATCHDOG=1")
        await asyncio.sleep(every)


async def serve(config: AgentConfig) -> None:
    """Run one agent until SIGTERM or SIGINT, speaking sd_notify on the way."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    limits = httpx.Limits(max_keepalive_connections=4, keepalive_expiry=120)
    async with httpx.AsyncClient(limits=limits, follow_redirects=False) as client:
        agent = Agent(config, client)
        agent.open()
        notify("READY=1")
        every = watchdog_interval()
        pinger = asyncio.create_task(_watchdog(every)) if every else None
        try:
            await agent.run(stop)
        finally:
            notify("STOPPING=1")
            if pinger is not None:
                pinger.cancel()
    log.info("stopped")


PROG = "xdp47-agent"


def main() -> None:
    command_line(PROG, "Run the XDP47 device agent: claim, heartbeat, apply.")
    level = os.environ.get("XDP47_LOG_LEVEL", "INFO").strip().upper()
    if level not in _LEVELS:
        fail(
            PROG, f"XDP47_LOG_LEVEL must be one of {', '.join(_LEVELS)}, not {level!r}"
        )
    configure_plain_logging(level, "%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = load_settings(PROG, load_config)
    asyncio.run(serve(config))


if __name__ == "__main__":
    main()
