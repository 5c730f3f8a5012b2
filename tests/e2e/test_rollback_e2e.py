"""Roll back with real processes: every device that applied a release goes back
to what it ran before (state dirs checked) and the others are left alone; a
policy with ``on_failure: rollback`` does it by itself; an agent refuses a
downgrade that is not marked as a rollback.

The tests run in order over one fleet of six devices: 1.1.0 everywhere, then
each test moves some of them and checks where each one ends.
"""

from __future__ import annotations

import os
import uuid
from typing import Any

import pytest

from tests.e2e.fleet import Fleet
from tests.e2e.operator_api import Operator
from tests.support.processes import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.integration, pytest.mark.timeout(240)]

SURE: dict[str, Any] = {
    "require_ok": True,
    "skip_offline": False,
    "max_failures_per_wave": 0,
}


def _roll(
    operator: Operator,
    fleet: Fleet,
    version: str,
    *,
    slots: list[int] | None = None,
    waves: int = 1,
    **policy: Any,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Upload ``version`` and start a rollout of it over the fleet (or the
    devices of these slots); returns the artifact and the rollout."""
    artifact = dict(operator.upload(os.urandom(8 * 1024), version))
    pid = operator.policy(f"p-{uuid.uuid4().hex[:6]}", **policy)["id"]
    key, value = next(iter(fleet.label.items()))
    selector = f"{key}={value}"
    if slots is not None:
        selector += f",slot in ({','.join(f's{n:02d}' for n in slots)})"
    body = {
        "tenant": operator.plane.tenant,
        "artifact_id": artifact["id"],
        "selector": selector,
        "waves": waves,
        "policy_id": pid,
    }
    r = operator.http.post("/api/rollouts", json=body)
    assert r.status_code == 201, r.text
    rollout = r.json()
    operator.start(rollout["id"])
    return artifact, rollout


def _versions(fleet: Fleet) -> list[str | None]:
    return [d.applied_version for d in fleet.devices]


def _current(fleet: Fleet) -> list[bytes]:
    return [(d.state_dir / "current.json").read_bytes() for d in fleet.devices]


def _rollback_of(operator: Operator, rollout_id: str) -> dict[str, Any]:
    """The rollback rollout of ``rollout_id`` once the scheduler created it."""
    found: dict[str, Any] = {}

    def created() -> None:
        r = operator.http.get("/api/rollouts", params={"limit": 1000})
        assert r.status_code == 200, r.text
        mine = [x for x in r.json() if x["rollback_of"] == rollout_id]
        assert len(mine) == 1, mine
        found.update(mine[0])

    wait_until(created, within=30)
    return found


@pytest.fixture(scope="module")
def baseline(e2e_fleet: Fleet) -> Fleet:
    operator = Operator(e2e_fleet.plane)
    try:
        _, rollout = _roll(operator, e2e_fleet, "1.1.0", **SURE)
        operator.wait_status(rollout["id"], "completed", within=60)
    finally:
        operator.close()
    assert _versions(e2e_fleet) == ["1.1.0"] * 6
    return e2e_fleet


def test_a_rollback_returns_every_device_that_applied_and_leaves_the_rest(
    baseline: Fleet, operator: Operator
) -> None:
    fleet = baseline
    _, rollout = _roll(operator, fleet, "2.0.0", slots=[0, 1, 2, 3], waves=2, **SURE)
    rid = rollout["id"]
    operator.wait_status(rid, "completed", within=60)
    assert _versions(fleet) == ["2.0.0"] * 4 + ["1.1.0"] * 2
    # Each target recorded what its device ran before.
    devices = operator.http.get(f"/api/rollouts/{rid}/devices").json()
    assert {d["from_version"] for d in devices} == {"1.1.0"}, devices
    untouched = _current(fleet)[4:]

    r = operator.http.post(f"/api/rollouts/{rid}:rollback", json={})
    assert r.status_code == 202, r.text
    answer = r.json()
    assert (answer["devices"], answer["status"]) == (4, "completed")
    back = operator.wait_status(answer["rollback_id"], "completed", within=60)
    assert (back["kind"], back["rollback_of"]) == ("rollback", rid)
    assert back["reason"] == "all 2 waves passed"
    assert _versions(fleet) == ["1.1.0"] * 6
    assert _current(fleet)[4:] == untouched
    targets = operator.targets(answer["rollback_id"])
    assert sorted(targets) == fleet.ids[:4]
    for device in fleet.devices[:4]:
        # 2.0.0 moved to the previous slot; 1.1.0 came back from it.
        assert (device.state_dir / "previous.json").exists()
        assert device.applied_files()
        assert not device.staging()
    # Rolling back again: nothing runs 2.0.0 any more.
    again = operator.http.post(f"/api/rollouts/{rid}:rollback")
    assert again.status_code == 409, again.text
    assert "no device" in again.json()["detail"]


def test_on_failure_rollback_rolls_back_by_itself(
    baseline: Fleet, operator: Operator
) -> None:
    """A bad release (the demo app reports failing on it) fails wave 1 (one
    device of six); the policy's on_failure: rollback sends it back at once,
    and the later waves' devices are never told."""
    fleet = baseline
    before = _versions(fleet)
    _, rollout = _roll(
        operator,
        fleet,
        "2.1.0+bad",
        waves=6,
        on_failure="rollback",
        grace_seconds=1,
        wave_deadline_seconds=30,
        **SURE,
    )
    rid = rollout["id"]
    failed = operator.wait_status(rid, "failed", within=60)
    back = _rollback_of(operator, rid)
    wave1 = sorted(
        d for d, t in operator.targets(rid).items() if t["state"] != "pending"
    )
    assert len(wave1) == 1, failed
    done = operator.wait_status(back["id"], "completed", within=60)
    assert done["kind"] == "rollback"
    assert sorted(operator.targets(back["id"])) == wave1
    assert _versions(fleet) == before
    # Exactly once: the timer and later heartbeats started no second one.
    assert _rollback_of(operator, rid)["id"] == back["id"]


def test_the_agent_refuses_an_unmarked_downgrade(
    baseline: Fleet, operator: Operator
) -> None:
    fleet = baseline
    _, up = _roll(operator, fleet, "3.0.0", slots=[4, 5], **SURE)
    operator.wait_status(up["id"], "completed", within=60)
    before = _current(fleet)
    # Gates that judge the wave only once both devices answered (a first
    # refusal would otherwise end it and skip the other device).
    gates = {**SURE, "max_failures_per_wave": 2, "min_success_ratio": 0}
    artifact, down = _roll(operator, fleet, "2.9.0", slots=[4, 5], **gates)
    operator.wait_status(down["id"], "partial", "completed", "failed", within=60)
    targets = operator.targets(down["id"])
    assert {t["state"] for t in targets.values()} == {"failed"}
    rows = fleet.rows()
    for device in fleet.devices[4:]:
        apply = rows[device.id]["last_apply"]
        assert (apply["result"], apply["code"]) == ("failed", "downgrade"), apply
        assert apply["artifact_id"] == artifact["id"]
        assert "not a rollback" in apply["reason"]
    assert _current(fleet) == before
    assert _versions(fleet)[4:] == ["3.0.0", "3.0.0"]
    reasons = operator.http.get(f"/api/rollouts/{down['id']}/devices").json()
    assert {d["reason"] for d in reasons} == {"downgrade"}, reasons
