"""Steering a rollout with real agent processes: a pause during wave 1 holds wave
2 (while wave 1's devices finish their update) until resume; an approval gate
holds wave 2 until ``:approve``, and under the tenant's four-eyes setting the
token that started the rollout is refused, by the API and by the scheduler.

A control plane of its own and a fleet of four devices (an ``xdp47-agent`` and
an ``xdp47-demoapp`` process each), two per wave.
"""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.fleet import Fleet, start_fleet
from tests.e2e.operator_api import Operator
from tests.support.control_plane import ControlPlane, run_async
from tests.support.processes import ProcessGroup, wait_until
from xdp47_common.adapters.amqp_bus import AmqpBus
from xdp47_common.messages import ApproveRollout
from xdp47_common.topology import Topology

pytestmark = [pytest.mark.e2e, pytest.mark.integration, pytest.mark.timeout(240)]

# Gates that never fail by themselves in these scenarios.
SURE = {"require_ok": True, "skip_offline": False, "max_failures_per_wave": 3}
GRACE = 8  # seconds: long enough to pause before wave 1 passes, under load


@pytest.fixture(scope="module")
def e2e_fleet(e2e_plane: ControlPlane, e2e_group: ProcessGroup, e2e_dir: Path) -> Fleet:
    return start_fleet(
        e2e_plane,
        e2e_group,
        e2e_dir / "devices",
        name=f"h{uuid.uuid4().hex[:6]}",
        size=4,
    )


def _post(http: httpx.Client, path: str, *codes: int, **kw: Any) -> dict[str, Any]:
    r = http.post(path, **kw)
    assert r.status_code in (codes or (202,)), f"POST {path}: {r.status_code} {r.text}"
    return dict(r.json())


def _token(operator: Operator, name: str, *scopes: str) -> httpx.Client:
    minted = _post(
        operator.http, "/api/tokens", 201, json={"name": name, "scopes": list(scopes)}
    )
    return httpx.Client(
        base_url=operator.plane.api_url,
        headers={"Authorization": f"Bearer {minted['token']}"},
        timeout=30,
    )


def _wave_devices(operator: Operator, rollout_id: str, wave: int) -> list[str]:
    return sorted(
        d for d, t in operator.targets(rollout_id).items() if t["wave"] == wave
    )


def _wait_hold(operator: Operator, rollout_id: str, hold: str | None) -> dict[str, Any]:
    seen: dict[str, Any] = {}

    def held() -> None:
        seen.update(operator.get(rollout_id))
        assert (seen["status"], seen["hold"]) == ("running", hold), seen

    wait_until(held, within=45, every=0.2)
    return seen


def _runs_version(fleet: Fleet, devices: list[str], version: str) -> None:
    for d in devices:
        assert fleet.by_id(d).applied_version == version, d


def _stays(check: Any, seconds: float) -> None:
    """Hold ``check`` true for ``seconds`` (a hold is the absence of a move):
    checked every 0.2 s, failing at the first move."""
    ends = time.monotonic() + seconds
    while time.monotonic() < ends:
        check()
        time.sleep(0.2)


def test_a_pause_during_wave_1_holds_wave_2_until_resume(
    e2e_fleet: Fleet, operator: Operator
) -> None:
    artifact = operator.upload(os.urandom(16 * 1024), "5.0.0")
    pid = operator.policy(f"p-{uuid.uuid4().hex[:6]}", grace_seconds=GRACE, **SURE)[
        "id"
    ]
    rollout = operator.rollout(artifact["id"], e2e_fleet.label, waves=2, policy_id=pid)
    rid = rollout["id"]
    operator.start(rid)
    operator.wait_status(rid, "running")
    answer = _post(operator.http, f"/api/rollouts/{rid}:pause")
    assert answer["status"] == "running"
    paused = _wait_hold(operator, rid, "paused")
    assert paused["current_wave"] == 1, "wave 1 passed before the pause took effect"
    assert paused["reason"].startswith("paused by ")
    first, second = _wave_devices(operator, rid, 1), _wave_devices(operator, rid, 2)
    assert len(first) == len(second) == 2

    # Devices already told keep going: wave 1 updates while paused.
    wait_until(lambda: _runs_version(e2e_fleet, first, "5.0.0"), within=60)

    # Past the grace, wave 1 would pass; paused, nothing moves.
    def held() -> None:
        now = operator.get(rid)
        assert (now["current_wave"], now["hold"]) == (1, "paused"), now
        assert all(e2e_fleet.by_id(d).applied_version != "5.0.0" for d in second)

    _stays(held, GRACE + 3)
    rows = e2e_fleet.rows()
    assert all(rows[d]["desired_version"] != "5.0.0" for d in second), rows
    # Pausing again changes nothing; approving is refused: no wave awaits it.
    _post(operator.http, f"/api/rollouts/{rid}:pause")
    _post(operator.http, f"/api/rollouts/{rid}:approve", 409)

    _post(operator.http, f"/api/rollouts/{rid}:resume")
    # Resumed with the grace it had left when paused (wave 1 was judged in it),
    # then wave 2 runs and the rollout completes.
    final = operator.wait_status(rid, "completed", within=90)
    assert final["hold"] is None
    _runs_version(e2e_fleet, first + second, "5.0.0")
    outcomes = [(r["wave"], r["outcome"]) for r in operator.runs(rid)]
    assert outcomes == [(1, "succeeded"), (2, "succeeded")]


def test_an_approval_gate_holds_until_approved_by_a_second_token(
    e2e_fleet: Fleet, operator: Operator, e2e_plane: ControlPlane
) -> None:
    r = operator.http.patch(
        f"/api/tenants/{e2e_plane.tenant}", json={"four_eyes_approval": True}
    )
    assert r.status_code == 200, r.text
    assert r.json()["four_eyes_approval"] is True
    starter = _token(operator, "release-bot", "rollouts:write", "rollouts:approve")
    approver = _token(operator, "change-board", "rollouts:approve")
    try:
        artifact = operator.upload(os.urandom(16 * 1024), "5.1.0")
        pid = operator.policy(
            f"p-{uuid.uuid4().hex[:6]}", approval_before_waves=[2], **SURE
        )["id"]
        rollout = operator.rollout(
            artifact["id"], e2e_fleet.label, waves=2, policy_id=pid
        )
        rid = rollout["id"]
        _post(starter, f"/api/rollouts/{rid}:start")
        waiting = _wait_hold(operator, rid, "awaiting_approval")
        assert waiting["current_wave"] == 1
        assert waiting["reason"].endswith("wave 2 waits for approval")
        assert waiting["started_by"].startswith("token:")
        first, second = _wave_devices(operator, rid, 1), _wave_devices(operator, rid, 2)
        _runs_version(e2e_fleet, first, "5.1.0")  # wave 1 passed: all applied

        # The starter may not approve: refused by the API, and by the scheduler
        # when the command reaches it all the same (published by hand below).
        refused = starter.post(f"/api/rollouts/{rid}:approve")
        assert refused.status_code == 403, refused.text
        assert "four-eyes" in refused.json()["detail"]
        _publish_approve(e2e_plane, rid, waiting["started_by"])
        # Resume does not lift an approval gate.
        _post(operator.http, f"/api/rollouts/{rid}:resume", 409)

        def held() -> None:
            now = operator.get(rid)
            assert (now["current_wave"], now["hold"]) == (1, "awaiting_approval")
            assert all(e2e_fleet.by_id(d).applied_version != "5.1.0" for d in second)

        def refused_by_the_scheduler() -> None:
            assert _scheduler_count(e2e_plane, "approve", "refused") >= 1

        wait_until(refused_by_the_scheduler, within=30, every=0.3)
        _stays(held, 2)

        _post(approver, f"/api/rollouts/{rid}:approve")
        final = operator.wait_status(rid, "completed", within=90)
        assert final["hold"] is None
        _runs_version(e2e_fleet, first + second, "5.1.0")
        assert [(r["wave"], r["outcome"]) for r in operator.runs(rid)] == [
            (1, "succeeded"),
            (2, "succeeded"),
        ]
    finally:
        starter.close()
        approver.close()
        operator.http.patch(
            f"/api/tenants/{e2e_plane.tenant}", json={"four_eyes_approval": False}
        )


def _publish_approve(plane: ControlPlane, rollout_id: str, requested_by: str) -> None:
    """An approve command that did not pass through the API's check (a stale
    API, a replay): the scheduler, the authority, refuses it under four-eyes."""

    async def go() -> None:
        topology = Topology(plane.namespace)
        bus = AmqpBus(plane.amqp_url, topology)
        await bus.start()
        try:
            message = ApproveRollout(
                tenant=plane.tenant,
                rollout_id=uuid.UUID(rollout_id),
                requested_by=requested_by,
            )
            await bus.publish(
                topology.commands, topology.command_key(message.type), message
            )
        finally:
            await bus.close()

    run_async(go(), timeout=30)


def _scheduler_count(plane: ControlPlane, kind: str, result: str) -> float:
    """``xdp47_scheduler_commands_total{type, result}`` from the scheduler."""
    text = httpx.get(f"{plane.scheduler_url}/metrics", timeout=10).text
    for line in text.splitlines():
        if line.startswith("xdp47_scheduler_commands_total{") and (
            f'type="{kind}"' in line and f'result="{result}"' in line
        ):
            return float(line.rsplit(" ", 1)[1])
    return 0.0
