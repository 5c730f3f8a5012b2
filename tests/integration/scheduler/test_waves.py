"""A rollout moves wave by wave through the real scheduler, with simulated devices
heartbeating through ingest and RabbitMQ."""

from __future__ import annotations

import pytest

from tests.integration.scheduler.support import (
    applies,
    drive,
    fails,
    make_fleet,
    make_policy,
    make_rollout,
    runs,
    silent,
    status_is,
    targets,
    wait_for,
)

pytestmark = pytest.mark.integration


async def test_three_waves_complete_wave_by_wave(
    pool, scheduler, ingest, commands, events
) -> None:
    fleet = await make_fleet(pool, 9, labels={"site": "a"})
    rid = await make_rollout(pool, fleet, waves=3, selector={"site": "a"})
    await commands.start(fleet.tenant, rid)
    row = await drive(
        pool, ingest, rid, fleet.devices, applies, until=status_is("completed")
    )
    assert row["reason"] == "all 3 waves passed"
    history = await runs(pool, rid)
    assert [
        (r["wave"], r["outcome"], r["eligible"], r["succeeded"]) for r in history
    ] == [
        (1, "succeeded", 3, 3),
        (2, "succeeded", 3, 3),
        (3, "succeeded", 3, 3),
    ]
    # Waves ran one after another.
    assert history[0]["finished_at"] <= history[1]["started_at"]
    assert history[1]["finished_at"] <= history[2]["started_at"]
    t = await targets(pool, rid)
    assert {r["state"] for r in t.values()} == {"applied"}
    assert not any(r["active"] for r in t.values())

    async def published() -> None:
        assert events.names(rid) == [
            "started",
            "wave_started",
            "wave_finished",
            "wave_started",
            "wave_finished",
            "wave_started",
            "wave_finished",
            "completed",
        ]

    await wait_for(published)
    assert f"rollout.{fleet.tenant}.completed" in events.keys


async def test_bad_release_stops_at_wave_one_and_spares_the_fleet(
    pool, scheduler, ingest, commands
) -> None:
    fleet = await make_fleet(pool, 9)
    rid = await make_rollout(pool, fleet, waves=3)
    await commands.start(fleet.tenant, rid)
    row = await drive(
        pool, ingest, rid, fleet.devices, fails, until=status_is("failed")
    )
    assert row["reason"].startswith("wave 1: ")
    assert "failures > max_failures_per_wave 0" in row["reason"]
    t = await targets(pool, rid)
    later = [d for d in fleet.devices if d.id not in t or t[d.id]["wave"] > 1]
    assert len(later) == 6
    # Never told to update, in any heartbeat answer, and nothing desired now; of
    # the waves that never started at most wave 2 was written (ahead, pending,
    # never assigned), wave 3 never (the plan is stored compactly).
    assert all(d.told == [] for d in later)
    assert all(
        d.id not in t or (t[d.id]["wave"] == 2 and t[d.id]["assigned_at"] is None)
        for d in later
    )
    assert not any(r["wave"] == 3 for r in t.values())
    desired = await pool.fetch(
        "SELECT desired_artifact_id FROM devices WHERE tenant = $1", fleet.tenant
    )
    assert {r["desired_artifact_id"] for r in desired} == {None}
    wave1 = [r for r in t.values() if r["wave"] == 1]
    assert {r["reason"] for r in wave1 if r["state"] == "failed"} == {"sha256_mismatch"}
    assert [r["outcome"] for r in await runs(pool, rid)] == ["failed"]


async def test_skip_offline_skips_and_does_not_wait(
    pool, scheduler, ingest, commands
) -> None:
    fleet = await make_fleet(pool, 4)
    offline = await make_fleet(pool, 2, tenant=fleet.tenant, status="offline")
    fleet.devices += offline.devices
    pid = await make_policy(pool, fleet.tenant, skip_offline=True)
    rid = await make_rollout(pool, fleet, waves=1, policy_id=pid)
    await commands.start(fleet.tenant, rid)
    online = fleet.devices[:4]
    row = await drive(pool, ingest, rid, online, applies, until=status_is("partial"))
    assert row["reason"] == "all 1 waves passed with failed or skipped devices"
    (run,) = await runs(pool, rid)
    assert (run["eligible"], run["succeeded"], run["skipped"]) == (4, 4, 2)
    t = await targets(pool, rid)
    assert {(t[d.id]["state"], t[d.id]["reason"]) for d in offline.devices} == {
        ("skipped", "offline")
    }


async def test_abort_on_zero_eligible_aborts_a_wave_that_lost_every_device(
    pool, scheduler, commands
) -> None:
    fleet = await make_fleet(pool, 3, status="offline")
    pid = await make_policy(
        pool, fleet.tenant, skip_offline=True, abort_on_zero_eligible=True
    )
    rid = await make_rollout(pool, fleet, waves=1, policy_id=pid)
    await commands.start(fleet.tenant, rid)

    async def aborted():
        row = await pool.fetchrow("SELECT * FROM rollouts WHERE id = $1", rid)
        assert row["status"] == "aborted"
        return row

    row = await wait_for(aborted)
    reason = "wave 1: no eligible devices (3 in the wave, all skipped offline)"
    assert row["reason"] == reason
    (run,) = await runs(pool, rid)
    assert (run["outcome"], run["reason"], run["skipped"]) == ("aborted", reason, 3)


async def test_zero_eligible_without_the_flag_passes_as_skipped(
    pool, scheduler, commands
) -> None:
    fleet = await make_fleet(pool, 2, status="offline")
    pid = await make_policy(pool, fleet.tenant, abort_on_zero_eligible=False)
    rid = await make_rollout(pool, fleet, waves=2, policy_id=pid)
    await commands.start(fleet.tenant, rid)

    async def finished():
        row = await pool.fetchrow("SELECT * FROM rollouts WHERE id = $1", rid)
        assert row["status"] == "partial"

    await wait_for(finished)
    assert [r["outcome"] for r in await runs(pool, rid)] == ["skipped", "skipped"]


async def test_grace_seconds_delay_judging(pool, scheduler, ingest, commands) -> None:
    fleet = await make_fleet(pool, 2)
    pid = await make_policy(pool, fleet.tenant, grace_seconds=2)
    rid = await make_rollout(pool, fleet, waves=2, policy_id=pid)
    await commands.start(fleet.tenant, rid)
    await drive(pool, ingest, rid, fleet.devices, applies, until=status_is("completed"))
    first, second = await runs(pool, rid)
    # Judged no earlier than grace after the start, though every device applied
    # at once. The scheduler reads its clock inside the judging transaction,
    # whose now() (finished_at) is when that transaction began: a few
    # milliseconds before the judgement on a busy machine.
    slack = 0.25
    assert (first["finished_at"] - first["started_at"]).total_seconds() >= 2 - slack
    assert (second["finished_at"] - second["started_at"]).total_seconds() >= 2 - slack


async def test_wave_deadline_turns_silent_devices_into_timed_out(
    pool, scheduler, ingest, commands, events
) -> None:
    fleet = await make_fleet(pool, 3)
    pid = await make_policy(pool, fleet.tenant, wave_deadline_seconds=1)
    rid = await make_rollout(pool, fleet, waves=2, policy_id=pid)
    await commands.start(fleet.tenant, rid)
    row = await drive(
        pool, ingest, rid, fleet.devices, silent, until=status_is("failed")
    )
    assert "failures > max_failures_per_wave 0" in row["reason"]
    t = await targets(pool, rid)
    wave1 = [r for r in t.values() if r["wave"] == 1]
    assert {(r["state"], r["reason"]) for r in wave1} == {("failed", "timed_out")}
    (run,) = await runs(pool, rid)
    assert run["failed"] == len(wave1)

    async def timed_out_event():
        assert "wave_timed_out" in events.names(rid)

    await wait_for(timed_out_event)
