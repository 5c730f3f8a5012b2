"""Targeting end to end, with real agents: an artifact declared for arm64 never
reaches an x86 device a careless selector includes (the preview says
``incompatible``, the device is never told); an agent answered an incompatible
desired state by a forged ingest refuses it before downloading and reports
``incompatible``; a dynamic group used by a rollout includes a device relabelled
just before the start."""

from __future__ import annotations

import contextlib
import json
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.fleet import Fleet, start_fleet
from tests.e2e.operator_api import Operator
from tests.support.control_plane import ControlPlane
from tests.support.processes import ManagedProcess, ProcessGroup, clean_env, wait_until

# Each test starts its own agents; on a loaded machine that alone can take a
# minute.
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]


def _fleet(
    plane: ControlPlane,
    group: ProcessGroup,
    root: Path,
    archs: list[str],
) -> Fleet:
    name = f"t{uuid.uuid4().hex[:6]}"
    return start_fleet(
        plane,
        group,
        root / name,
        name=name,
        size=len(archs),
        agent_env=lambda n: {"XDP47_DEVICE_PROPERTIES": f"arch={archs[n]}"},
    )


def _upload(operator: Operator, version: str, compatible: str) -> dict[str, Any]:
    r = operator.http.post(
        "/api/artifacts/upload",
        params={
            "tenant": operator.plane.tenant,
            "version": version,
            "compatible": compatible,
        },
        content=f"release {version}".encode(),
        headers={"Content-Type": "application/octet-stream"},
    )
    assert r.status_code == 201, r.text
    return dict(r.json())


def test_a_selector_that_includes_an_incompatible_device_never_tells_it(
    e2e_plane: ControlPlane, e2e_group: ProcessGroup, e2e_dir: Path, operator
) -> None:
    fleet = _fleet(e2e_plane, e2e_group, e2e_dir, ["arm64", "x86_64", "arm64"])
    x86 = fleet.devices[1]
    assert fleet.rows()[x86.id]["properties"] == {"arch": "x86_64"}
    art = _upload(operator, f"arm-{uuid.uuid4().hex[:6]}", "arch=arm64")
    # The selector names the whole fleet: the x86 kiosk included by mistake.
    rollout = operator.rollout(art["id"], fleet.label, waves=1)
    plan = operator._ok(operator.http.get(f"/api/rollouts/{rollout['id']}/plan"))
    assert plan["total"] == 2
    assert {e["device_id"]: e["reason"] for e in plan["excluded"]} == {
        x86.id: "incompatible"
    }
    operator.start(rollout["id"])
    operator.wait_status(rollout["id"], "completed", within=60)

    def applied() -> None:
        versions = [d.applied_version for d in fleet.devices]
        assert versions == [art["version"], None, art["version"]], versions

    wait_until(applied, within=30)
    assert x86.id not in operator.targets(rollout["id"])
    row = fleet.rows()[x86.id]
    assert (row["desired_version"], row["last_apply"]) == (None, None)


class _ForgedIngest(ThreadingHTTPServer):
    """Answers every heartbeat with an update to an arm64-only artifact, whose
    bytes it also serves; records the heartbeats and the downloads."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _ForgedHandler)
        self.beats: list[dict[str, Any]] = []
        self.downloads = 0
        self.artifact_id = str(uuid.uuid4())

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _ForgedHandler(BaseHTTPRequestHandler):
    server: _ForgedIngest
    protocol_version = "HTTP/1.1"

    def log_message(self, *_: Any) -> None:
        pass

    def _send(self, status: int, body: bytes, kind: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        self.server.downloads += 1
        self._send(200, b"x86 kiosks must never run this", "application/octet-stream")

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        beat = json.loads(self.rfile.read(length) or b"{}")
        self.server.beats.append(beat)
        device_id = self.path.split("/")[3]
        desired = {
            "action": "update",
            "device_id": device_id,
            "artifact_id": self.server.artifact_id,
            "version": "arm-only",
            "uri": f"{self.server.url}/artifact.bin",
            "sha256": "ab" * 32,
            "size": 30,
            "compatible": {"arch": ["arm64"]},
        }
        self._send(202, json.dumps(desired).encode())


@contextlib.contextmanager
def _forged_ingest() -> Iterator[_ForgedIngest]:
    server = _ForgedIngest()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def test_an_agent_refuses_a_forged_incompatible_desired_state(
    e2e_plane: ControlPlane, e2e_group: ProcessGroup, e2e_dir: Path
) -> None:
    state_dir = e2e_dir / f"forged-{uuid.uuid4().hex[:6]}"
    state_dir.mkdir()
    with _forged_ingest() as forged:
        agent = e2e_group.start(
            "agent-forged",
            "xdp47-agent",
            clean_env(
                XDP47_CONTROL_URL=e2e_plane.api_url,
                XDP47_INGEST_URL=forged.url,
                XDP47_TENANT=e2e_plane.tenant,
                XDP47_AGENT_TOKEN=e2e_plane.token,
                XDP47_STATE_DIR=str(state_dir),
                XDP47_DEVICE_ID=f"forged-{uuid.uuid4().hex[:6]}",
                XDP47_DEVICE_PROPERTIES="arch=x86_64,device_type=kiosk-k2",
                XDP47_HEARTBEAT_INTERVAL="0.3",
                XDP47_APPLY_BACKOFF="1",
            ),
            wait=False,
        )

        def refused() -> None:
            assert agent.running, agent.log_tail()
            reports = [b["last_apply"] for b in forged.beats if b.get("last_apply")]
            assert reports, "no apply reported yet"
            assert reports[-1]["result"] == "failed"
            assert reports[-1]["code"] == "incompatible"
            assert reports[-1]["artifact_id"] == forged.artifact_id

        wait_until(refused, within=30)
        report = next(b for b in forged.beats if b.get("last_apply"))["last_apply"]
        assert '"arm64"' in report["reason"]
        assert '"x86_64"' in report["reason"]
        # Refused before a byte was fetched, and nothing applied.
        assert forged.downloads == 0
        assert not (state_dir / "applied_version").exists()
        agent.stop()


def test_a_dynamic_group_includes_a_device_relabelled_just_before_start(
    e2e_plane: ControlPlane, e2e_group: ProcessGroup, e2e_dir: Path, operator
) -> None:
    fleet = _fleet(e2e_plane, e2e_group, e2e_dir, ["arm64", "arm64", "arm64"])
    (name,) = fleet.label.values()
    group = operator._ok(
        operator.http.post(
            "/api/groups",
            json={
                "tenant": e2e_plane.tenant,
                "name": f"canary-{name}",
                "selector": f"fleet={name},ring in (canary)",
            },
        ),
        201,
    )
    assert group["count"] == 0
    art = _upload(operator, f"g-{uuid.uuid4().hex[:6]}", "arch=arm64")
    rollout = operator._ok(
        operator.http.post(
            "/api/rollouts",
            json={
                "tenant": e2e_plane.tenant,
                "artifact_id": art["id"],
                "group_id": group["id"],
                "waves": 1,
            },
        ),
        201,
    )
    # Relabel one device after the rollout was created: its agent restarts with
    # another XDP47_DEVICE_LABELS and claims again.
    moved = fleet.devices[2]
    moved.agent.stop()
    env = {
        **moved.agent.env,
        "XDP47_DEVICE_LABELS": f"fleet={name},slot=s02,ring=canary",
    }
    moved.agent = ManagedProcess(
        moved.agent.name, moved.agent.argv, env, moved.agent.log_path
    ).spawn()
    e2e_group.processes.append(moved.agent)

    def relabelled() -> None:
        assert fleet.rows()[moved.id]["labels"].get("ring") == "canary"

    wait_until(relabelled, within=60)
    operator.start(rollout["id"])
    operator.wait_status(rollout["id"], "completed", within=60)
    assert set(operator.targets(rollout["id"])) == {moved.id}

    def moved_applied() -> None:
        assert moved.applied_version == art["version"]

    wait_until(moved_applied, within=30)
    assert [d.applied_version for d in fleet.devices[:2]] == [None, None]
