"""Rollout semantics with real processes: zero eligible, empty waves, overlapping
rollouts, retries judged per wave, what devices are told after a failure, and a
scheduler outage longer than the offline threshold.

A control plane of its own with ``XDP47_SCHED_OFFLINE_AFTER`` of a few seconds
and a heartbeat batch of one message, and a fleet of three devices (an
``xdp47-agent`` and an ``xdp47-demoapp`` process each). The scheduler outage
runs last: it kills and restarts the scheduler process.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.fleet import Fleet, start_fleet
from tests.e2e.operator_api import Operator
from tests.e2e.slow_server import HeldFileServer, held_file_server
from tests.support.control_plane import ControlPlane
from tests.support.processes import ProcessGroup, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.integration, pytest.mark.timeout(240)]

OFFLINE_AFTER = 4.0
# Gates that never fail by themselves in these scenarios.
SURE = {"require_ok": True, "skip_offline": False, "max_failures_per_wave": 3}


@pytest.fixture(scope="module")
def e2e_plane_env() -> dict[str, str]:
    # One heartbeat message per scheduler transaction: the backlog of an
    # outage takes many batches to read, as a large fleet's does.
    return {
        "XDP47_SCHED_OFFLINE_AFTER": str(OFFLINE_AFTER),
        "XDP47_SCHED_BATCH_SIZE": "1",
    }


@pytest.fixture(scope="module")
def e2e_fleet(e2e_plane: ControlPlane, e2e_group: ProcessGroup, e2e_dir: Path) -> Fleet:
    return start_fleet(
        e2e_plane,
        e2e_group,
        e2e_dir / "devices",
        name=f"s{uuid.uuid4().hex[:6]}",
        size=3,
    )


def _release(operator: Operator, version: str) -> dict[str, Any]:
    return dict(operator.upload(os.urandom(16 * 1024), version))


def _run_view(runs: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [
        (r["attempt"], r["wave"], r["outcome"], r["eligible"], r["succeeded"])
        for r in runs
    ]


def _roll(
    operator: Operator,
    fleet: Fleet,
    version: str,
    *,
    waves: int = 1,
    **policy: Any,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Upload a release and start a rollout of it over the fleet; returns the
    artifact and the start's answer."""
    artifact = _release(operator, version)
    pid = operator.policy(f"p-{uuid.uuid4().hex[:6]}", **policy)["id"]
    rollout = operator.rollout(artifact["id"], fleet.label, waves=waves, policy_id=pid)
    return artifact, operator.start(rollout["id"])


def test_a_start_with_no_eligible_device_aborts_with_the_reason(
    e2e_fleet: Fleet, operator: Operator
) -> None:
    artifact = _release(operator, "0.0.1")
    rollout = operator.rollout(artifact["id"], {"fleet": "nobody"}, waves=2)
    answer = operator.start(rollout["id"])
    assert answer["planned"] == 0
    assert any("no eligible devices" in w for w in answer["warnings"]), answer
    final = operator.wait_status(rollout["id"], "aborted")
    assert final["reason"] == "no eligible devices (0 matched the selector)"
    assert final["started_at"] is not None
    assert final["finished_at"] is not None
    assert operator.runs(rollout["id"]) == []


def test_without_abort_on_zero_eligible_it_completes_saying_nothing_was_updated(
    e2e_fleet: Fleet, operator: Operator
) -> None:
    artifact = _release(operator, "0.0.2")
    pid = operator.policy("keep-going", abort_on_zero_eligible=False)["id"]
    rollout = operator.rollout(
        artifact["id"], {"fleet": "nobody"}, waves=2, policy_id=pid
    )
    operator.start(rollout["id"])
    final = operator.wait_status(rollout["id"], "completed")
    assert final["reason"] == (
        "0 devices updated: no eligible devices (0 matched the selector)"
    )
    assert operator.runs(rollout["id"]) == []


def test_trailing_empty_waves_of_a_small_fleet_pass(
    e2e_fleet: Fleet, operator: Operator
) -> None:
    """Five waves over three devices under abort_on_zero_eligible: waves 4 and 5
    hold nobody and pass; the rollout completes."""
    _, answer = _roll(
        operator, e2e_fleet, "1.0.0", waves=5, abort_on_zero_eligible=True, **SURE
    )
    assert (answer["planned"], answer["excluded"]) == (3, {})
    final = operator.wait_status(answer["id"], "completed")
    assert final["reason"] == "all 5 waves passed"
    assert _run_view(operator.runs(answer["id"])) == [
        (1, 1, "succeeded", 1, 1),
        (1, 2, "succeeded", 1, 1),
        (1, 3, "succeeded", 1, 1),
        (1, 4, "skipped", 0, 0),
        (1, 5, "skipped", 0, 0),
    ]
    assert {d.applied_version for d in e2e_fleet.devices} == {"1.0.0"}


def test_a_second_rollout_over_running_devices_is_aborted_with_the_reason(
    e2e_fleet: Fleet, operator: Operator
) -> None:
    # The first one holds the fleet: a long grace keeps its only wave open.
    _, first = _roll(operator, e2e_fleet, "1.1.0", grace_seconds=600, **SURE)
    operator.wait_status(first["id"], "running")
    try:
        artifact = _release(operator, "1.2.0")
        second = operator.rollout(artifact["id"], e2e_fleet.label, waves=2)
        answer = operator.start(second["id"])
        assert answer["planned"] == 0, answer
        assert answer["excluded"] == {"in_another_rollout": 3}, answer
        assert any(
            "3 matched devices are in another running rollout" in w
            for w in answer["warnings"]
        ), answer
        final = operator.wait_status(second["id"], "aborted")
        assert final["reason"] == (
            "no eligible devices (3 matched the selector, all excluded: "
            "in_another_rollout 3)"
        )
    finally:
        operator.http.post(f"/api/rollouts/{first['id']}:abort")
        operator.wait_status(first["id"], "aborted")


def test_a_retry_judges_the_wave_as_a_whole(
    e2e_fleet: Fleet, operator: Operator
) -> None:
    """One device of three cannot update (its agent is stopped): it times out,
    the wave passes at 2 of 3 and the rollout ends partial. Its retry times out
    again; the wave is still 2 of 3, so the rollout stays partial (judged on the
    retry's one device alone it would be 0 of 1 and fail)."""
    victim = e2e_fleet.devices[0]
    victim.agent.stop()
    try:
        _, answer = _roll(
            operator,
            e2e_fleet,
            "1.3.0",
            require_ok=True,
            skip_offline=False,
            min_success_ratio=0.5,
            max_failures_per_wave=1,
            wave_deadline_seconds=6,
        )
        rid = answer["id"]
        first = operator.wait_status(rid, "partial", within=60)
        assert _run_view(operator.runs(rid)) == [(1, 1, "succeeded", 3, 2)], first
        r = operator.http.post(f"/api/rollouts/{rid}:retry")
        assert r.status_code == 202, r.text

        def retried() -> None:
            # The runs first: once the retry's run has its outcome, the status
            # written in the same transaction is final (read the other way
            # round, the old "partial" could pass with the retry still running).
            runs = operator.runs(rid)
            assert len(runs) == 2, runs
            assert runs[1]["outcome"] is not None, runs
            row = operator.get(rid)
            assert row["status"] == "partial", row

        wait_until(retried, within=60, every=0.3)
        runs = operator.runs(rid)
        assert _run_view(runs) == [
            (1, 1, "succeeded", 3, 2),
            (2, 1, "succeeded", 1, 0),
        ]
        assert runs[1]["reason"] == (
            "wave 1: 2 of 3 succeeded (ratio 0.67); 2 of them in earlier attempts"
        )
    finally:
        e2e_fleet.restart_agent(victim)
        wait_until(lambda: _online(e2e_fleet), within=60)


def _online(fleet: Fleet) -> None:
    rows = fleet.rows()
    assert all(r["status"] == "online" for r in rows.values()), rows


def test_after_a_failure_devices_keep_the_release_they_applied(
    e2e_fleet: Fleet, operator: Operator
) -> None:
    """Every device runs 2.0.0 from a completed rollout; a bad release in two
    waves fails in wave 1 at its first unhealthy device. A device that applied
    the bad release is told to keep it (no fallback to 2.0.0, nothing rolls back
    behind the operator); the wave-2 device, never told, keeps 2.0.0."""
    good, answer = _roll(operator, e2e_fleet, "2.0.0", **SURE)
    operator.wait_status(answer["id"], "completed")
    bad, answer = _roll(
        operator,
        e2e_fleet,
        "2.1.0-bad",
        waves=2,
        require_ok=True,
        max_failures_per_wave=0,
    )
    operator.wait_status(answer["id"], "failed")
    targets = operator.targets(answer["id"])
    failed = {d for d, t in targets.items() if t["state"] == "failed"}
    assert failed, "no device failed the bad release"
    untold = set(e2e_fleet.ids) - {d for d, t in targets.items() if t["wave"] == 1}
    assert len(untold) == 1, targets

    def settled() -> None:
        rows = e2e_fleet.rows()
        for device_id in failed:
            assert rows[device_id]["current_artifact_id"] == bad["id"]
            assert rows[device_id]["desired_artifact_id"] == bad["id"], rows
        for device_id in untold:
            assert rows[device_id]["current_artifact_id"] == good["id"]
            assert rows[device_id]["desired_artifact_id"] == good["id"], rows

    settled()
    # Several heartbeats later, each still runs what it ran when the rollout
    # failed (a fallback came about a second after the failure).
    until = time.monotonic() + 3
    while time.monotonic() < until:
        for device_id in failed:
            assert e2e_fleet.by_id(device_id).applied_version == "2.1.0-bad"
        for device_id in untold:
            assert e2e_fleet.by_id(device_id).applied_version == "2.0.0"
        time.sleep(0.3)
    settled()


def _scheduler_lines(plane: ControlPlane, rollout_id: str) -> list[dict[str, Any]]:
    """The scheduler's JSON log lines that name ``rollout_id``."""
    lines = []
    for raw in plane.scheduler.log_path.read_text(errors="replace").splitlines():
        if rollout_id not in raw:
            continue
        line = json.loads(raw)
        assert line["rollout_id"] == rollout_id, line
        lines.append(line)
    return lines


def test_a_failed_rollouts_life_is_told_by_the_scheduler_log(
    e2e_plane: ControlPlane, e2e_fleet: Fleet, operator: Operator
) -> None:
    """From the scheduler's log lines alone: the start command, each status
    change, each wave start, the gate's verdict with its numbers, the terminal
    status and its reason; every line at INFO or above, with rollout and tenant."""
    _, answer = _roll(
        operator,
        e2e_fleet,
        "3.0.0-bad",
        waves=2,
        require_ok=True,
        max_failures_per_wave=0,
    )
    rid = answer["id"]
    final = operator.wait_status(rid, "failed")

    def told() -> None:
        lines = _scheduler_lines(e2e_plane, rid)
        assert any(x.get("terminal") for x in lines), lines

    wait_until(told, within=30)
    lines = _scheduler_lines(e2e_plane, rid)
    assert all(x["tenant"] == e2e_plane.tenant for x in lines), lines
    assert all(x["level"] in ("info", "warning") for x in lines), lines
    story = [x["event"] for x in lines]
    # The command's outcome follows the decisions it made (told at its commit).
    assert f"start command for rollout {rid}: applied" in story
    assert story[0] == f"rollout {rid} draft -> running: started", story
    transitions = [
        (x["from_status"], x["to_status"]) for x in lines if "to_status" in x
    ]
    assert transitions == [("draft", "running"), ("running", "failed")], story
    assert f"rollout {rid} wave 1 of 2 started (attempt 1)" in story
    [verdict] = [x for x in lines if "verdict" in x]
    assert verdict["verdict"] == "failed"
    assert verdict["wave"] == 1
    assert verdict["failed"] >= 1
    assert verdict["eligible"] >= verdict["failed"] + verdict["succeeded"]
    assert verdict["reason"] in final["reason"]
    assert f"{verdict['failed']} failures" in verdict["reason"], verdict
    [end] = [x for x in lines if x.get("terminal")]
    assert end["to_status"] == "failed"
    assert end["reason"] == final["reason"]
    assert story.index(verdict["event"]) < story.index(end["event"])


def test_a_scheduler_outage_longer_than_offline_after_skips_no_device(
    e2e_fleet: Fleet,
    e2e_group: ProcessGroup,
    e2e_plane: ControlPlane,
    operator: Operator,
) -> None:
    """The same rollout twice: undisturbed, then with the scheduler killed while
    wave 1's device downloads and kept down longer than both the offline
    threshold and the wave deadline while every agent keeps heartbeating through
    ingest (the device finishes its update meanwhile). Both end alike: every
    wave succeeded with its device, none skipped or timed out."""
    policy = operator.policy(
        "outage",
        require_ok=True,
        skip_offline=True,
        max_failures_per_wave=0,
        grace_seconds=1,
        wave_deadline_seconds=8,
    )

    def roll(version: str, host: HeldFileServer) -> str:
        content = host.content
        artifact = operator.register(
            host.url, hashlib.sha256(content).hexdigest(), len(content), version
        )
        rollout = operator.rollout(
            artifact["id"], e2e_fleet.label, waves=3, policy_id=policy["id"]
        )
        return str(operator.start(rollout["id"])["id"])

    def outcome(rid: str) -> tuple[Any, ...]:
        final = operator.wait_status(rid, "completed", within=90)
        return (
            final["status"],
            final["reason"],
            [
                (r["wave"], r["outcome"], r["eligible"], r["succeeded"], r["skipped"])
                for r in operator.runs(rid)
            ],
        )

    with held_file_server(os.urandom(64 * 1024)) as host:
        undisturbed = outcome(roll("3.0.0", host))
    assert undisturbed[0] == "completed"

    with held_file_server(os.urandom(64 * 1024)) as host:
        host.hold.set()  # wave 1's download stops half-way until released
        rid = roll("3.1.0", host)
        wait_until(lambda: _held(host), within=30)
        scheduler = e2e_plane.scheduler
        assert scheduler.kill() == -9
        host.hold.clear()
        host.release.set()  # the device updates while the scheduler is down
        # Longer than both thresholds; the agents keep heartbeating (ingest
        # accepts and queues every heartbeat).
        until = time.monotonic() + max(OFFLINE_AFTER, 8) + 3
        while time.monotonic() < until:
            for device in e2e_fleet.devices:
                assert device.agent.running, device.agent.log_tail()
            time.sleep(0.5)
        e2e_group.restart(scheduler, wait=True)
        assert outcome(rid) == undisturbed
    assert {d.applied_version for d in e2e_fleet.devices} == {"3.1.0"}


def _held(host: HeldFileServer) -> None:
    assert host.held == 1, host.held
