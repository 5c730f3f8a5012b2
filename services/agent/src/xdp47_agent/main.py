"""``xdp47-agent``: run one agent from the environment until SIGTERM/SIGINT.

The process needs no event loop: ``BlockingHttp`` never suspends, so each step
is driven to its end by ``drive`` and the waits between steps are ``select``
calls that a signal ends at once (``stopping.StopSignal``). An artifact is
downloaded, verified and committed by a short-lived child process
(``installer``), so what only an install needs (hashlib's OpenSSL, PyNaCl, the
download's buffers) never stays in this one. That keeps the process at about
the size of a bare interpreter (docs/performance.md, B7).
"""

from __future__ import annotations

import logging
import os
import sys

from xdp47_agent.agent import Agent
from xdp47_agent.blocking import BlockingHttp, drive
from xdp47_agent.config import AgentConfig, load_config
from xdp47_agent.http import Stopped
from xdp47_agent.installer import ChildInstaller
from xdp47_agent.logs import configure_logging
from xdp47_agent.sdnotify import notify, watchdog_interval
from xdp47_agent.stopping import StopSignal

__all__ = ["StopSignal", "main", "serve"]

log = logging.getLogger("xdp47_agent")
PROG = "xdp47-agent"
_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
_EXIT_CONFIG = 2


def serve(config: AgentConfig) -> None:
    """Run one agent until SIGTERM or SIGINT, speaking sd_notify on the way."""
    stop = StopSignal(watchdog_interval())
    http = BlockingHttp(tick=stop.tick)
    agent = Agent(
        config,
        http,
        sleep=stop.sleep,
        installer=ChildInstaller(stop, deadline=_install_deadline(config)),
    )
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


def _install_deadline(config: AgentConfig) -> float:
    """How long an installer child may take before it is stopped: its download
    deadline, and time to hash, verify and commit after it."""
    return config.download_timeout + 300.0


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


def _parse_args(argv: list[str]) -> None:
    """``--help`` and ``--version``: argparse is imported only for them (it
    pulls in gettext, locale and shutil, ~1.5 MB the running agent never uses)."""
    import argparse

    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Run the XDP47 device agent: claim, heartbeat, apply.",
        epilog="Configured by XDP47_* environment variables (docs/agent.md).",
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {_version()}")
    parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if args:
        _parse_args(args)
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
