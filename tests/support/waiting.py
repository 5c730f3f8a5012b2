"""Waiting on a condition, never on a fixed sleep: the bound is for a loaded
machine, and the wait ends as soon as the condition holds."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable

__all__ = ["until"]


async def until(
    probe: Callable[[], bool | Awaitable[bool]],
    *,
    within: float = 30.0,
    every: float = 0.01,
    what: str = "condition",
) -> None:
    """Return once ``probe()`` (sync or async) is true.

    Raises:
        AssertionError: it was still false after ``within`` seconds.
    """
    deadline = time.monotonic() + within
    while True:
        held = probe()
        if inspect.isawaitable(held):
            held = await held
        if held:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} never held within {within:g}s")
        await asyncio.sleep(every)
