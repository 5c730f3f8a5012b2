"""A fleet of real devices for the end-to-end tests: per device one
``xdp47-demoapp`` and one ``xdp47-agent`` process sharing a state dir, the agent
claiming through the api and heartbeating through ingest.

Owns what a test needs to look at a device from outside: its state dir (what it
applied, what is left in staging), its processes (to kill or restart the agent by
pid) and its row in ``GET /api/devices``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.support.control_plane import ControlPlane
from tests.support.processes import (
    ManagedProcess,
    ProcessGroup,
    clean_env,
    free_port,
    wait_until,
)

__all__ = ["Device", "Fleet", "start_fleet"]

HEARTBEAT_INTERVAL = 0.3


@dataclass
class Device:
    id: str
    state_dir: Path
    app: ManagedProcess
    agent: ManagedProcess

    @property
    def applied_version(self) -> str | None:
        path = self.state_dir / "applied_version"
        return path.read_text().strip() if path.exists() else None

    def staging(self) -> list[Path]:
        staging = self.state_dir / "staging"
        return sorted(staging.iterdir()) if staging.exists() else []

    def applied_files(self) -> list[str]:
        return sorted(p.name for p in self.state_dir.glob("applied_*-*"))


@dataclass
class Fleet:
    plane: ControlPlane
    group: ProcessGroup
    label: dict[str, str]  # matches every device of this fleet, and no other
    devices: list[Device] = field(default_factory=list)

    @property
    def ids(self) -> list[str]:
        return [d.id for d in self.devices]

    def by_id(self, device_id: str) -> Device:
        return next(d for d in self.devices if d.id == device_id)

    def rows(self) -> dict[str, dict[str, Any]]:
        """This fleet's devices as the API lists them, by id."""
        key, value = next(iter(self.label.items()))
        r = httpx.get(
            f"{self.plane.api_url}/api/devices",
            params={"label": f"{key}={value}", "limit": 1000},
            headers=self.plane.auth,
            timeout=10,
        )
        assert r.status_code == 200, r.text
        return {d["id"]: d for d in r.json()}

    def restart_agent(self, device: Device) -> None:
        device.agent = self.group.restart(device.agent, wait=False)


def start_fleet(
    plane: ControlPlane,
    group: ProcessGroup,
    root: Path,
    *,
    name: str,
    size: int,
    heartbeat_interval: float = HEARTBEAT_INTERVAL,
    agent_env: Callable[[int], dict[str, str]] | None = None,
) -> Fleet:
    """Start ``size`` devices labelled ``fleet=<name>`` and wait until the API
    lists every one of them online (claimed, a heartbeat stored).
    ``agent_env(n)``: more (or other) agent settings of device ``n``."""
    fleet = Fleet(plane, group, {"fleet": name})
    apps: list[tuple[str, Path, ManagedProcess, str]] = []
    for n in range(size):
        device_id = f"{name}-{n:02d}"
        state_dir = root / device_id
        state_dir.mkdir(parents=True)
        port = free_port()
        app = group.start(
            f"demoapp-{device_id}",
            "xdp47-demoapp",
            clean_env(
                XDP47_STATE_DIR=str(state_dir),
                XDP47_DEMOAPP_ADDR=f"127.0.0.1:{port}",
            ),
            ready_url=f"http://127.0.0.1:{port}/healthz",
            wait=False,
        )
        apps.append((device_id, state_dir, app, f"http://127.0.0.1:{port}/metrics"))
    for n, (device_id, state_dir, app, metrics_url) in enumerate(apps):
        app.wait_ready()
        agent = group.start(
            f"agent-{device_id}",
            "xdp47-agent",
            clean_env(
                XDP47_CONTROL_URL=plane.api_url,
                XDP47_INGEST_URL=plane.ingest_url,
                XDP47_TENANT=plane.tenant,
                XDP47_DEVICE_LABELS=f"fleet={name},slot=s{device_id[-2:]}",
                XDP47_AGENT_TOKEN=plane.token,
                XDP47_METRICS_URL=metrics_url,
                XDP47_STATE_DIR=str(state_dir),
                XDP47_DEVICE_ID=device_id,
                XDP47_HEARTBEAT_INTERVAL=str(heartbeat_interval),
                XDP47_DOWNLOAD_STALL_TIMEOUT="20",
                XDP47_APPLY_BACKOFF="1",
                XDP47_APPLY_BACKOFF_MAX="2",
                **(agent_env(n) if agent_env else {}),
            ),
            wait=False,
        )
        fleet.devices.append(Device(device_id, state_dir, app, agent))

    def all_online() -> None:
        for device in fleet.devices:
            assert device.agent.running, device.agent.log_tail()
        rows = fleet.rows()
        assert sorted(rows) == fleet.ids
        assert all(r["status"] == "online" for r in rows.values()), rows

    wait_until(all_online, within=60)
    return fleet
