"""SIGTERM/SIGINT as a flag, and the waits of a process without an event loop
(``xdp47-agent`` and its installer child) that a signal ends at once."""

from __future__ import annotations

import os
import select
import signal
import time

from xdp47_agent.http import Stopped
from xdp47_agent.sdnotify import notify

__all__ = ["StopSignal"]


class StopSignal:
    """SIGTERM/SIGINT as a flag, and waits that they end at once
    (``signal.set_wakeup_fd``); pings the systemd watchdog while waiting
    (``every`` seconds)."""

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

    def _select(self, fds: list[int], left: float) -> list[int]:
        if self._every:
            left = min(left, self._every)
        ready, _, _ = select.select([self._read, *fds], [], [], max(left, 0.0))
        if self._read in ready:
            os.read(self._read, 512)
        return [fd for fd in ready if fd != self._read]

    def wait(self, seconds: float) -> None:
        """Up to ``seconds``; returns early when stopped."""
        end = time.monotonic() + seconds
        while not self.stopped:
            self._ping()
            left = end - time.monotonic()
            if left <= 0:
                return
            self._select([], left)

    def readable(self, fd: int, seconds: float) -> bool:
        """Wait until ``fd`` is readable (True) or ``seconds`` pass (False),
        pinging on the way.

        Raises:
            Stopped: the process was asked to stop.
        """
        end = time.monotonic() + seconds
        while True:
            self.tick()
            left = end - time.monotonic()
            if left <= 0:
                return False
            if self._select([fd], left):
                return True

    async def sleep(self, seconds: float) -> None:
        """The agent's sleep (retry waits inside a step)."""
        self.wait(seconds)
        if self.stopped:
            raise Stopped()
