"""The demo's simulated fleet: N real agents, each with its own demo app.

Every device is an ``xdp47_agent.Agent`` with a state dir of its own and an
``xdp47_demoapp.DemoApp`` (a small HTTP server on a free port, in a thread) that
reads that state dir, so a bad release shows up in the device's metrics exactly
as on a real device. All agents run on the caller's event loop and share one
keep-alive ``httpx.AsyncClient`` (through ``HttpxHttp``).
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
from dataclasses import dataclass
from pathlib import Path

import httpx

from xdp47_agent import Agent
from xdp47_agent.config import AgentConfig, Secret
from xdp47_agent.httpx_adapter import HttpxHttp
from xdp47_demoapp import DemoApp

__all__ = ["FLEET_SELECTOR", "Fleet", "device_labels"]

FLEET_SELECTOR = {"fleet": "demo"}
_REGIONS = ("eu-west", "us-east", "ap-south")
_MODELS = ("kiosk-k1", "pos-p2")


def device_labels(index: int) -> dict[str, str]:
    """Labels of device ``index``: region, model and store, spread evenly."""
    return {
        **FLEET_SELECTOR,
        "region": _REGIONS[index % len(_REGIONS)],
        "model": _MODELS[index % len(_MODELS)],
        "store": f"store-{index // 4 + 1:03d}",
    }


@dataclass
class _Device:
    agent: Agent
    app: DemoApp


class Fleet:
    """``devices`` agents of ``tenant`` under ``state_root`` (wiped at start)."""

    def __init__(
        self,
        *,
        devices: int,
        tenant: str,
        control_url: str,
        ingest_url: str,
        claim_token: str,
        state_root: Path,
        heartbeat_interval: float = 1.0,
    ) -> None:
        self._count = devices
        self._tenant = tenant
        self._control_url = control_url
        self._ingest_url = ingest_url
        self._token = claim_token
        self._root = state_root
        self._interval = heartbeat_interval
        self._devices: list[_Device] = []
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._client: httpx.AsyncClient | None = None

    def start(self) -> None:
        """Start every demo app and agent (the agents run as tasks)."""
        shutil.rmtree(self._root, ignore_errors=True)
        self._client = httpx.AsyncClient(
            limits=httpx.Limits(max_connections=64, max_keepalive_connections=64),
            timeout=httpx.Timeout(10.0),
        )
        for i in range(self._count):
            state_dir = self._root / f"device-{i + 1:03d}"
            state_dir.mkdir(parents=True)
            app = DemoApp(state_dir, "127.0.0.1", 0)
            metrics_url = app.start()
            config = AgentConfig(
                control_url=self._control_url,
                ingest_url=self._ingest_url,
                tenant=self._tenant,
                device_labels=device_labels(i),
                agent_token=Secret(self._token),
                metrics_url=metrics_url,
                state_dir=state_dir,
                device_id=f"{self._tenant}-{i + 1:03d}",
                heartbeat_interval=self._interval,
                apply_backoff=self._interval,
            )
            agent = Agent(config, HttpxHttp(self._client))
            self._devices.append(_Device(agent, app))
            self._tasks.append(
                asyncio.create_task(agent.run(self._stop), name=f"agent-{i + 1}")
            )

    async def stop(self) -> None:
        """Stop the agents, then their demo apps; close the shared client."""
        self._stop.set()
        if self._tasks:
            _, pending = await asyncio.wait(self._tasks, timeout=15)
            for task in pending:
                task.cancel()
            for task in pending:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        self._tasks.clear()
        for device in self._devices:
            await asyncio.to_thread(device.app.stop)
        self._devices.clear()
        if self._client is not None:
            await self._client.aclose()
            self._client = None
        shutil.rmtree(self._root, ignore_errors=True)
