"""``xdp47-agent``: run one agent from the environment until SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys

import httpx
from pydantic import ValidationError

from xdp47_agent.agent import Agent
from xdp47_agent.config import AgentConfig, load_config
from xdp47_agent.sdnotify import notify, watchdog_interval

__all__ = ["main", "serve"]

log = logging.getLogger("xdp47_agent")


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


def main() -> None:
    logging.basicConfig(
        level=os.environ.get("XDP47_LOG_LEVEL", "INFO").upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        config = load_config()
    except ValidationError as exc:
        sys.stderr.write(f"xdp47-agent: invalid configuration:\n{exc}\n")
        raise SystemExit(2) from exc
    asyncio.run(serve(config))


if __name__ == "__main__":
    main()
