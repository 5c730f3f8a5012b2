"""Per-device retries with real agents: a download that fails twice and then
passes counts as succeeded, with both failed tries in the device's history; a
SHA256 mismatch fails at once, with no retry. Each test targets one device of a
two-device fleet of its own (agent and demo app processes)."""

from __future__ import annotations

import hashlib
import os
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.fleet import Fleet, start_fleet
from tests.e2e.operator_api import Operator
from tests.e2e.slow_server import held_file_server
from tests.support.control_plane import ControlPlane
from tests.support.processes import ProcessGroup

pytestmark = pytest.mark.e2e

# Short waits, so the three tries take seconds; the bound is the wave deadline.
RETRYING = {
    "max_device_retries": 2,
    "retry_backoff_seconds": 1,
    "retry_backoff_max_seconds": 2,
    "max_failures_per_wave": 0,
    "wave_deadline_seconds": 120,
}


@pytest.fixture(scope="module")
def fleet(e2e_plane: ControlPlane, e2e_group: ProcessGroup, e2e_dir: Path) -> Fleet:
    return start_fleet(
        e2e_plane,
        e2e_group,
        e2e_dir / "devices",
        name=f"r{uuid.uuid4().hex[:6]}",
        size=2,
    )


def _one_device_rollout(
    operator: Operator, fleet: Fleet, slot: int, artifact: dict[str, Any], name: str
) -> dict[str, Any]:
    policy = operator.policy(name, **RETRYING)
    selector = {**fleet.label, "slot": f"s{slot:02d}"}
    rollout: dict[str, Any] = operator.rollout(
        artifact["id"], selector, waves=1, policy_id=policy["id"], name=name
    )
    operator.start(rollout["id"])
    return rollout


def _target(operator: Operator, rollout_id: str) -> dict[str, Any]:
    r = operator.http.get(f"/api/rollouts/{rollout_id}/devices")
    assert r.status_code == 200, r.text
    (only,) = r.json()
    return dict(only)


def test_a_download_that_fails_twice_then_succeeds_counts_as_succeeded(
    fleet: Fleet, operator: Operator
) -> None:
    device = fleet.devices[0]
    content = os.urandom(32 * 1024)
    with held_file_server(content) as host:
        host.fail_next = 2  # the host answers 503 twice, then serves the file
        artifact = operator.register(
            host.url, hashlib.sha256(content).hexdigest(), len(content), "7.0.1"
        )
        rollout = _one_device_rollout(operator, fleet, 0, artifact, "flaky host")
        final = operator.wait_status(rollout["id"], "completed", within=90)
        assert (host.requests, host.served) == (3, 1)
    assert device.applied_version == "7.0.1"
    (run,) = operator.runs(rollout["id"])
    assert (run["eligible"], run["succeeded"], run["failed"]) == (1, 1, 0)
    assert final["status"] == "completed"

    target = _target(operator, rollout["id"])
    assert (target["state"], target["device_attempt"]) == ("succeeded", 3)
    assert [(a["attempt"], a["code"]) for a in target["attempts"]] == [
        (1, "download_failed"),
        (2, "download_failed"),
    ]

    detail = operator.http.get(f"/api/devices/{device.id}")
    assert detail.status_code == 200, detail.text
    body = detail.json()
    newest = body["rollout_history"][0]
    assert (newest["rollout_id"], newest["state"], newest["attempt"]) == (
        rollout["id"],
        "applied",
        1,
    )
    assert newest["device_attempt"] == 3
    tries = newest["attempts"]
    assert [(a["attempt"], a["code"]) for a in tries] == [
        (1, "download_failed"),
        (2, "download_failed"),
    ]
    assert all("503" in a["reason"] and a["at"] for a in tries)
    assert body["last_apply"]["result"] == "ok"
    assert body["last_apply"]["device_attempt"] == 3


def test_a_sha256_mismatch_fails_at_once_without_a_retry(
    fleet: Fleet, operator: Operator
) -> None:
    device = fleet.devices[1]
    before = device.applied_version
    genuine = os.urandom(32 * 1024)
    tampered = bytearray(genuine)
    tampered[99] ^= 0x01
    with held_file_server(bytes(tampered)) as host:
        artifact = operator.register(
            host.url, hashlib.sha256(genuine).hexdigest(), len(genuine), "7.0.2"
        )
        rollout = _one_device_rollout(operator, fleet, 1, artifact, "tampered bytes")
        operator.wait_status(rollout["id"], "failed", within=60)
        assert host.requests == 1  # fetched once, never again
    target = _target(operator, rollout["id"])
    assert (target["state"], target["reason"], target["device_attempt"]) == (
        "failed",
        "sha256_mismatch",
        1,
    )
    assert [(a["attempt"], a["code"]) for a in target["attempts"]] == [
        (1, "sha256_mismatch")
    ]
    assert target["retry_after"] is None
    newest = operator.http.get(f"/api/devices/{device.id}").json()["rollout_history"][0]
    assert (newest["state"], newest["reason"], newest["device_attempt"]) == (
        "failed",
        "sha256_mismatch",
        1,
    )
    assert device.applied_version == before
