"""A crash (or an I/O error) at any point of the apply path leaves exactly the old
or exactly the new state after recovery, and the restarted agent converges."""

from __future__ import annotations

import errno
import json
import random
from pathlib import Path
from typing import Any

import pytest

from tests.unit.agent.conftest import AgentFactory
from tests.unit.agent.support import (
    ArtifactServer,
    FakeControlPlane,
    desired_for,
    snapshot,
)
from xdp47_agent.agent import Agent

OLD = b"old release\n" * 50
NEW = random.Random(2).randbytes(20_000)
OLD_ID = "11111111-1111-4111-8111-111111111111"
NEW_ID = "22222222-2222-4222-8222-222222222222"


class SimulatedCrash(BaseException):
    """Escapes every ``except Exception``, like a power cut."""


class Faults:
    """Records the fault points passed; raises once at ``crash_at``."""

    def __init__(self, error: BaseException | None = None) -> None:
        self.points: list[str] = []
        self.crash_at: str | None = None
        self.error = error or SimulatedCrash()

    def __call__(self, point: str) -> None:
        self.points.append(point)
        if point == self.crash_at:
            self.crash_at = None
            raise self.error


async def _with_old(
    make_agent: AgentFactory,
    control: FakeControlPlane,
    server: ArtifactServer,
    state_dir: Path,
    faults: Faults,
) -> Agent:
    agent = make_agent(state_dir=state_dir, fault=faults)
    server.routes["/old"] = ArtifactServer.body(OLD)
    server.routes["/new"] = ArtifactServer.body(NEW)
    control.desired = desired_for(
        OLD, server.url("/old"), version="1.0.0", artifact_id=OLD_ID
    )
    await agent.step()
    assert agent.current is not None
    assert agent.current.version == "1.0.0"
    return agent


def _new_desired(server: ArtifactServer) -> dict[str, Any]:
    return desired_for(NEW, server.url("/new"), version="2.0.0", artifact_id=NEW_ID)


def _view(root: Path) -> dict[str, str]:
    """The applied state: identity, seq and applied_at differ between runs. The
    previous slot is a cache (a fault after the commit point may leave it
    empty; ``test_rollback_slot`` covers it), not part of the applied state."""
    skip = ("seq", "current.json", "device_id", "credential", "previous.json")
    files = {
        k: v
        for k, v in snapshot(root).items()
        if k not in skip and not k.startswith("previous_")
    }
    current = root / "current.json"
    if current.exists():
        data = json.loads(current.read_text())
        files["current.json"] = (
            f"{data['artifact_id']}:{data['version']}:{data['sha256']}"
        )
    return files


async def _reference(make_agent, control, server, tmp_path: Path):
    faults = Faults()
    ref_dir = tmp_path / "ref"
    agent = await _with_old(make_agent, control, server, ref_dir, faults)
    old = _view(ref_dir)
    faults.points.clear()
    control.desired = _new_desired(server)
    await agent.step()
    new = _view(ref_dir)
    points = list(dict.fromkeys(p for p in faults.points if not p.startswith("seq")))
    return points, old, new


async def test_apply_path_passes_every_fault_point(
    make_agent, control, server, tmp_path
):
    points, old, new = await _reference(make_agent, control, server, tmp_path)
    assert points[0] == "download:chunk"
    assert points.index("verified") < points.index(f"applied_{NEW_ID}:replaced")
    assert points.index(f"applied_{NEW_ID}:replaced") < points.index(
        "current.json:replaced"
    )
    assert points[-1] == "commit:done"
    assert old["current.json"].startswith(OLD_ID)
    assert new["current.json"].startswith(NEW_ID)
    assert f"applied_{OLD_ID}" not in new


@pytest.mark.parametrize("kind", ["crash", "EIO", "ENOSPC"])
async def test_fault_at_every_point_leaves_old_or_new(
    make_agent, control, server, tmp_path, kind
):
    points, old, new = await _reference(make_agent, control, server, tmp_path)
    outcomes: dict[str, str] = {}
    for n, point in enumerate(points):
        error: BaseException = (
            SimulatedCrash() if kind == "crash" else OSError(getattr(errno, kind), kind)
        )
        faults = Faults(error)
        case = tmp_path / f"case{n}"
        agent = await _with_old(make_agent, control, server, case, faults)
        faults.crash_at = point
        control.desired = _new_desired(server)
        try:
            await agent.step()
        except SimulatedCrash:
            assert kind == "crash"
        if kind != "crash":
            # An I/O error is reported, not fatal, and the dir is already consistent.
            assert agent.last_body is not None
            assert _view(case) in (old, new), point
        restarted = make_agent(state_dir=case)
        restarted.open()
        view = _view(case)
        assert not [f for f in snapshot(case) if f.endswith((".tmp", ".part"))], point
        assert view in (old, new), (
            f"torn state after a fault at {point}: {sorted(view)}"
        )
        outcomes[point] = "old" if view == old else "new"
        await restarted.step()
        await restarted.step()
        assert _view(case) == new, point
        assert control.heartbeats[-1]["current_version"] == "2.0.0"
        assert control.heartbeats[-1]["last_apply"]["result"] == "ok"
    # Faults before the commit point roll back, after it roll forward.
    assert outcomes[f"applied_{NEW_ID}:replaced"] == "old"
    assert outcomes["commit:done"] == "new"
    if kind == "crash":
        assert outcomes["current.json:replaced"] == "new"
