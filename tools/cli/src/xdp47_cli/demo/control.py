"""Where the demo's control plane runs: shared settings and the two modes' base.

``service_env`` is the environment both modes give api, ingest and scheduler:
development mode with a dev token of the demo's tenant, a fast scheduler timer
and a short default grace, so the scripted rollouts take seconds. The external
mode (``external.py``) passes it to three processes; the embedded mode
(``embedded.py``) builds the same settings in-process.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import httpx

__all__ = [
    "ControlPlane",
    "DemoError",
    "Endpoints",
    "free_port",
    "service_env",
    "wait_ready",
]

SCHED_INTERVAL = "0.5"


class DemoError(RuntimeError):
    """The demo cannot go on; the message is what the operator sees."""


@dataclass(frozen=True)
class Endpoints:
    api_url: str
    ingest_url: str


class ControlPlane(Protocol):
    mode: str

    async def start(self) -> Endpoints: ...

    async def stop(self) -> None: ...

    def describe(self) -> str: ...


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def service_env(*, tenant: str, dev_token: str, demo_dir: Path) -> dict[str, str]:
    """The ``XDP47_*`` settings the demo gives every service."""
    return {
        "XDP47_ENV": "development",
        "XDP47_DEV_TOKEN_ENABLED": "true",
        "XDP47_AGENT_TOKEN": dev_token,
        "XDP47_DEV_TENANT": tenant,
        "XDP47_SCHED_INTERVAL": SCHED_INTERVAL,
        "XDP47_SCHED_GRACE": "1",
        "XDP47_BLOB_DIR": str(demo_dir / "blobs"),
    }


async def wait_ready(
    client: httpx.AsyncClient,
    url: str,
    what: str,
    *,
    within: float = 60.0,
    alive: Callable[[], str | None] | None = None,
) -> None:
    """Poll ``url`` until it answers 200, or raise ``DemoError`` after ``within``
    seconds; ``alive`` names why the service died, if it did (None: running)."""
    deadline = time.monotonic() + within
    last = "no answer"
    while time.monotonic() < deadline:
        if alive is not None:
            dead = alive()
            if dead:
                raise DemoError(f"{what} stopped while starting: {dead}")
        try:
            response = await client.get(url, timeout=2.0)
            if response.status_code == 200:
                return
            last = f"{response.status_code} {response.text[:200]}"
        except httpx.HTTPError as exc:
            last = type(exc).__name__
        await asyncio.sleep(0.2)
    raise DemoError(f"{what} was not ready at {url} within {within:g}s ({last})")
