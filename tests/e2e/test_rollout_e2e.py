"""The whole loop with every part a real process: api, ingest and scheduler on
the real PostgreSQL and RabbitMQ, six devices each an ``xdp47-agent`` with its
``xdp47-demoapp``. Releases are uploaded to the api and downloaded from it by the
agents. A good release rolls out in three waves; a bad one (the demo app reports
``failing`` for a version containing ``bad``) stops at wave 1 under
``require_ok`` and nobody outside wave 1 is ever told to install it; an agent
killed in the middle of a download converges after a restart; a tampered
artifact is refused and its failure code reaches the target and the device API,
and once its host serves the right bytes a retry installs it everywhere.
"""

from __future__ import annotations

import hashlib
import os
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest

from tests.e2e.fleet import Fleet
from tests.e2e.operator_api import Operator, query
from tests.e2e.slow_server import HeldFileServer, held_file_server
from tests.support.control_plane import ControlPlane
from tests.support.processes import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

GOOD = "2.0.0"
BAD = "3.0.0-bad"
NEXT = "2.1.0"
SETTLED = "4.0.0"  # above the releases before it (agents refuse downgrades)


@pytest.fixture(scope="module")
def good_rollout(e2e_fleet: Fleet, e2e_plane: ControlPlane) -> dict[str, Any]:
    """The good release uploaded and rolled out to the fleet in three waves."""
    operator = Operator(e2e_plane)
    try:
        artifact = operator.upload(os.urandom(64 * 1024), GOOD)
        rollout = operator.rollout(
            artifact["id"], e2e_fleet.label, waves=3, name="good"
        )
        operator.start(rollout["id"])
        final = operator.wait_status(rollout["id"], "completed")
        return {"artifact": artifact, "rollout": final}
    finally:
        operator.close()


def test_a_good_release_completes_in_three_waves_on_every_device(
    good_rollout: dict[str, Any], e2e_fleet: Fleet, e2e_plane: ControlPlane, operator
) -> None:
    artifact = good_rollout["artifact"]
    # The agents downloaded it from the api, with their device credential.
    assert artifact["uri"].startswith(f"{e2e_plane.api_url}/api/artifacts/")
    rows = e2e_fleet.rows()
    assert {r["current_version"] for r in rows.values()} == {GOOD}, rows
    assert {r["current_artifact_id"] for r in rows.values()} == {artifact["id"]}
    assert {r["health"] for r in rows.values()} == {"ok"}
    runs = operator.runs(good_rollout["rollout"]["id"])
    assert [(r["wave"], r["outcome"]) for r in runs] == [
        (1, "succeeded"),
        (2, "succeeded"),
        (3, "succeeded"),
    ]
    assert sum(r["succeeded"] for r in runs) == len(e2e_fleet.devices)
    assert all(r["eligible"] == 2 and r["failed"] == 0 for r in runs), runs
    for device in e2e_fleet.devices:
        assert device.applied_version == GOOD
        assert device.applied_files() == [f"applied_{artifact['id']}"]
        assert device.staging() == []


def test_the_audit_trail_of_the_run_lists_every_action_with_its_actor(
    good_rollout: dict[str, Any], e2e_fleet: Fleet, operator: Operator
) -> None:
    rid = good_rollout["rollout"]["id"]
    answer = operator.http.get("/api/audit", params={"rollout": rid, "order": "asc"})
    assert answer.status_code == 200, answer.text
    trail = answer.json()
    seen = Counter(
        (r["action"], r["actor"], r["on_behalf_of"], r["outcome"]) for r in trail
    )
    op = "dev-token"  # the operator (and the agents' claims) use the dev token
    assert seen == Counter(
        {
            ("rollout.created", op, None, "applied"): 1,
            ("rollout.start.requested", op, None, "accepted"): 1,
            ("rollout.start", op, None, "applied"): 1,
            ("rollout.started", "scheduler", op, "applied"): 1,
            ("rollout.wave_started", "scheduler", op, "applied"): 1,
            ("rollout.wave_finished", "scheduler", None, "applied"): 3,
            ("rollout.wave_started", "scheduler", None, "applied"): 2,
            ("rollout.completed", "scheduler", None, "applied"): 1,
        }
    ), trail
    waves = [
        r["detail"].get("wave") for r in trail if r["action"] == "rollout.wave_started"
    ]
    assert waves == [1, 2, 3]
    assert trail[-1]["status_after"] == "completed"
    claims = operator.http.get(
        "/api/audit", params={"action": "device.*", "limit": 1000}
    )
    claimed = {r["subject_id"] for r in claims.json()}
    assert {d.id for d in e2e_fleet.devices} <= claimed


def test_a_bad_release_fails_at_wave_one_and_goes_no_further(
    good_rollout: dict[str, Any], e2e_fleet: Fleet, operator: Operator
) -> None:
    good_id = good_rollout["artifact"]["id"]
    bad = operator.upload(os.urandom(64 * 1024), BAD)
    policy = operator.policy(
        "require-ok", require_ok=True, max_failures_per_wave=0, grace_seconds=1
    )
    rollout = operator.rollout(
        bad["id"], e2e_fleet.label, waves=3, policy_id=policy["id"], name="bad"
    )
    operator.start(rollout["id"])
    final = operator.wait_status(rollout["id"], "failed")
    assert final["current_wave"] == 1, final

    runs = operator.runs(rollout["id"])
    assert [(r["wave"], r["outcome"]) for r in runs] == [(1, "failed")], runs
    targets = operator.targets(rollout["id"])
    wave1 = {d for d, t in targets.items() if t["wave"] == 1}
    outside = set(e2e_fleet.ids) - wave1
    assert len(wave1) == 2
    assert len(outside) == 4
    rows = e2e_fleet.rows()
    for device_id in outside:
        # Never assigned, never told: its desired state never named the release.
        # (Targets of later waves are written when their wave starts, or ahead.)
        target = targets.get(device_id)
        if target is not None:
            assert target["assigned_at"] is None, target
            assert target["state"] == "pending", target
        row = rows[device_id]
        assert row["current_version"] == GOOD, row
        assert row["current_artifact_id"] == good_id
        assert row["desired_artifact_id"] != bad["id"]
        device = e2e_fleet.by_id(device_id)
        assert device.applied_version == GOOD
        assert device.applied_files() == [f"applied_{good_id}"]
        assert bad["id"] not in device.agent.log_path.read_text()
    # The first wave-1 device on the release reported its demo app failing and
    # stopped the rollout (its partner may not have applied it by then).
    failed = {d for d in wave1 if targets[d]["state"] == "failed"}
    assert 1 <= runs[0]["failed"] <= len(failed), (runs, targets)
    for device_id in failed:
        assert rows[device_id]["current_version"] == BAD, rows[device_id]
        assert rows[device_id]["health"] == "failing"
        assert e2e_fleet.by_id(device_id).applied_version == BAD


def test_an_agent_killed_mid_download_converges_after_restart(
    good_rollout: dict[str, Any], e2e_fleet: Fleet, operator: Operator
) -> None:
    content = os.urandom(512 * 1024)
    with held_file_server(content) as host:
        host.hold.set()  # every download stops half-way until released
        artifact = operator.register(
            host.url, hashlib.sha256(content).hexdigest(), len(content), NEXT
        )
        rollout = operator.rollout(
            artifact["id"], e2e_fleet.label, waves=1, name="crash"
        )
        operator.start(rollout["id"])
        victim = e2e_fleet.devices[0]

        def half_downloaded() -> None:
            parts = [p.stat().st_size for p in victim.staging()]
            assert len(parts) == 1, parts
            assert 0 < parts[0] < len(content), parts

        wait_until(half_downloaded, within=30)
        assert victim.agent.kill() == -9
        assert victim.staging(), "the kill left no partial download behind"

        host.hold.clear()
        host.release.set()
        e2e_fleet.restart_agent(victim)
        operator.wait_status(rollout["id"], "completed")

    rows = e2e_fleet.rows()
    assert {r["current_version"] for r in rows.values()} == {NEXT}, rows
    assert victim.agent.running
    assert victim.applied_version == NEXT
    assert victim.applied_files() == [f"applied_{artifact['id']}"]
    assert victim.staging() == []
    assert (victim.state_dir / f"applied_{artifact['id']}").read_bytes() == content


@dataclass
class TamperedRelease:
    host: HeldFileServer  # serving ``genuine`` with one bit flipped
    genuine: bytes  # the bytes whose SHA256 the artifact registers
    artifact: dict[str, Any]
    rollout: dict[str, Any]  # one wave, strict policy: failed by the agents


@contextmanager
def tampered_release(
    operator: Operator, fleet: Fleet, version: str, name: str
) -> Iterator[TamperedRelease]:
    """A one-wave rollout to the fleet of an artifact whose host serves other
    bytes than it registers, left ``failed`` (every agent refuses the bytes),
    while the host still serves."""
    genuine = os.urandom(64 * 1024)
    tampered = bytearray(genuine)
    tampered[1000] ^= 0x01
    with held_file_server(bytes(tampered)) as host:
        artifact = operator.register(
            host.url, hashlib.sha256(genuine).hexdigest(), len(genuine), version
        )
        policy = operator.policy(f"strict ({name})", max_failures_per_wave=0)
        rollout = operator.rollout(
            artifact["id"], fleet.label, waves=1, policy_id=policy["id"], name=name
        )
        operator.start(rollout["id"])
        operator.wait_status(rollout["id"], "failed")
        yield TamperedRelease(host, genuine, artifact, rollout)


def test_a_tampered_artifact_is_refused_and_says_why_everywhere(
    good_rollout: dict[str, Any], e2e_fleet: Fleet, operator: Operator
) -> None:
    """The host serves other bytes than the SHA256 registered: every agent that
    tries refuses it, reports ``sha256_mismatch``, and the code reaches the
    rollout target and ``GET /api/devices/{id}``."""
    # Every device on one release first, newer than any earlier test's. A device
    # still running an earlier test's failed release (the bad one) falls back to
    # the last release it applied once this rollout fails, and applies it: a
    # newer last_apply than its refusal.
    settled = operator.upload(os.urandom(64 * 1024), SETTLED)
    again = operator.rollout(settled["id"], e2e_fleet.label, waves=1, name="settled")
    operator.start(again["id"])
    operator.wait_status(again["id"], "completed")
    with tampered_release(operator, e2e_fleet, "9.9.9", "tampered") as release:
        artifact, rollout = release.artifact, release.rollout

    rows = query(
        operator.plane.db_url,
        "SELECT device_id, state, reason, reason_detail FROM rollout_targets "
        "WHERE rollout_id = $1::text::uuid AND state = 'failed'",
        rollout["id"],
    )
    assert rows, "no target failed"
    assert {r["reason"] for r in rows} == {"sha256_mismatch"}, rows
    assert all(r["reason_detail"].startswith("sha256 mismatch") for r in rows)
    device_id = rows[0]["device_id"]
    detail = operator.http.get(f"/api/devices/{device_id}")
    assert detail.status_code == 200, detail.text
    body = detail.json()
    assert body["last_apply"]["code"] == "sha256_mismatch", body
    assert body["last_apply"]["artifact_id"] == artifact["id"]
    assert body["last_apply_text"].startswith("The downloaded bytes do not match")
    newest = body["rollout_history"][0]
    assert (newest["rollout_id"], newest["state"], newest["reason"]) == (
        rollout["id"],
        "failed",
        "sha256_mismatch",
    )
    assert newest["reason_text"]
    assert body["recent_heartbeats"]
    # The tampered artifact was applied nowhere. (Versions are not compared
    # with a snapshot: the previous test's failed rollout may still be rolling
    # its devices back while this one runs.)
    for device in e2e_fleet.devices:
        assert device.applied_version != "9.9.9", device.id
        assert f"applied_{artifact['id']}" not in device.applied_files(), device.id


def test_a_retry_fetches_bytes_that_were_refused_once_they_are_fixed(
    e2e_fleet: Fleet, operator: Operator
) -> None:
    """The agents remember bytes that failed verification and do not fetch them
    again for the same order; a retry is a new order (the answer's ``attempt``),
    so once the host serves the right bytes the retry installs them everywhere."""
    version = "9.9.10"
    with tampered_release(operator, e2e_fleet, version, "fixed, then retried") as (
        release
    ):
        rollout, host = release.rollout, release.host
        assert host.served >= 1
        host.content = release.genuine  # the operator fixes what the host serves
        operator.retry(rollout["id"])  # 202: the scheduler acts on it next

        def retried() -> None:
            assert operator.get(rollout["id"])["attempt"] == 2

        wait_until(retried, within=45, every=0.2)
        final = operator.wait_status(rollout["id"], "completed", within=90)
    assert final["attempt"] == 2
    assert {d.id: d.applied_version for d in e2e_fleet.devices} == {
        d.id: version for d in e2e_fleet.devices
    }
