"""``xdp47-agent``: run one agent from the environment until SIGTERM/SIGINT.

The process needs no event loop: ``BlockingHttp`` never suspends, so each step
is driven to its end by ``drive`` and the waits between steps are ``select``
calls that a signal ends at once (``signal.set_wakeup_fd``). That keeps the
process at about the size of a bare interpreter (docs/performance.md, B7).
"""

from __future__ import annotations

import argparse
import logging
import os
import select
import signal
import sys
import time

from xdp47_agent.agent import Agent
from xdp47_agent.blocking import BlockingHttp, drive
from xdp47_agent.config import AgentConfig, load_config
from xdp47_agent.http import Stopped
from xdp47_agent.logs import configure_logging
from xdp47_agent.sdnotify import notify, watchdog_interval

__all__ = ["StopSignal", "main", "serve"]

log = logging.getLogger("xdp47_agent")
PROG = "xdp47-agent"
_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
_EXIT_CONFIG = 2


class StopSignal:
    """SIGTERM/SIGINT as a flag, and a wait that they end at once; pings the
    systemd watchdog while waiting (``every`` seconds)."""

    def __init__(self, every: float | None = None) -> None:
        self.stopped = False
        self._every = every
        self._last_ping = 0.0
        self._read, write = os.pipe()
        os.set_blocking(write, False)
        signal.set_wakeup_fd(write)
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._set)

    def _set(self, signum: int, frame: object) -> None:
        self.stopped = True

    def tick(self) -> None:
        """Between reads of a request: ping when due, stop when asked."""
        self._ping()
        if self.stopped:
            raise Stopped()

    def _ping(self) -> None:
        now = time.monotonic()
        if self._every and now - self._last_ping >= self._every:
            notify("WATCHDOG=1")
            self._last_ping = now

    def wait(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while not self.stopped:
            self._ping()
            left = end - time.monotonic()
            if left <= 0:
                return
            if self._every:
                left = min(left, self._every)
            ready, _, _ = select.select([self._read], [], [], left)
            if ready:
                os.read(self._read, 512)

    async def sleep(self, seconds: float) -> None:
        """The agent's sleep (retry waits inside a step)."""
        self.wait(seconds)
        if self.stopped:
            raise Stopped()


def serve(config: AgentConfig) -> None:
    """Run one agent until SIGTERM or SIGINT, speaking sd_notify on the way."""
    stop = StopSignal(watchdog_interval())
    http = BlockingHttp(tick=stop.tick)
    agent = Agent(config, http, sleep=stop.sleep)
    agent.open()
    notify("READY=1")
    try:
        while not stop.stopped:
            try:
                delay = drive(agent.guarded_step())
            except Stopped:
                break
            stop.wait(delay)
    finally:
        notify("STOPPING=1")
        http.close()
    log.info("stopped")


def _version() -> str:
    # Imported here: importlib.metadata pulls in email and zipfile (~5 MB).
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("xdp47-agent")
    except PackageNotFoundError:  # run from a source tree or the .deb
        return "unknown"


def _fail(message: str) -> None:
    sys.stderr.write(f"{PROG}: {' '.join(message.split())}\n")
    raise SystemExit(_EXIT_CONFIG)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Run the XDP47 device agent: claim, heartbeat, apply.",
        epilog="Configured by XDP47_* environment variables (docs/agent.md).",
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {_version()}")
    parser.parse_args(argv)
    level = os.environ.get("XDP47_LOG_LEVEL", "INFO").strip().upper()
    if level not in _LEVELS:
        _fail(f"XDP47_LOG_LEVEL must be one of {', '.join(_LEVELS)}, not {level!r}")
    configure_logging(level)
    try:
        config = load_config()
    except ValueError as exc:
        _fail(str(exc))
    serve(config)


if __name__ == "__main__":
    main()
