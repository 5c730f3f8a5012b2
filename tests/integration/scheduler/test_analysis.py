"""Telemetry analysis on the real scheduler: running aggregates per rollout, wave
and cohort written by the heartbeat batches, and the gates that read them."""

from __future__ import annotations

import functools

import pytest

from tests.integration.scheduler.analysis_support import (
    ERR,
    aggregates,
    analysed_fleet,
    analysis_policy,
    applies_with,
    has_status,
    wave_two_written,
)
from tests.integration.scheduler.support import (
    Fleet,
    add_devices,
    applies,
    drive,
    make_policy,
    make_rollout,
    reported,
    runs,
    status_is,
    targets,
    wait_for,
)
from xdp47_common.messages import ResumeRollout

pytestmark = pytest.mark.integration


async def test_a_worse_error_rate_fails_wave_one_with_the_numbers(
    pool, scheduler, ingest, commands
) -> None:
    fleet = await analysed_fleet(pool, 6)
    pid = await make_policy(pool, fleet.tenant, analysis=analysis_policy(ERR))
    rid = await make_rollout(pool, fleet, waves=3, policy_id=pid)
    await commands.start(fleet.tenant, rid)
    row = await drive(
        pool,
        ingest,
        rid,
        fleet.devices,
        applies_with(error_rate=0.13),
        until=status_is("failed"),
    )
    reason = row["reason"]
    assert reason.startswith(
        "wave 1: analysis failed: error_rate: updated - baseline = "
    )
    assert "> 0.02" in reason
    assert "updated mean 0.13 (2 devices" in reason
    assert "baseline mean 0.01 (2 devices" in reason
    assert [r["outcome"] for r in await runs(pool, rid)] == ["failed"]
    agg = await aggregates(pool, rid)
    # Only the analysed metric, only wave 1's window, two devices a side; each
    # sample's value is the device's, so the sums are exact multiples.
    assert {k[:3] for k in agg} == {(1, 1, "updated"), (1, 1, "baseline")}
    assert {k[3] for k in agg} == {"error_rate"}
    devices, samples, total = agg[(1, 1, "updated", "error_rate")]
    assert devices == 2
    assert samples >= 2
    assert total == pytest.approx(0.13 * samples)
    devices, samples, total = agg[(1, 1, "baseline", "error_rate")]
    assert devices == 2
    assert samples >= 2
    assert total == pytest.approx(0.01 * samples)


async def test_baseline_is_the_later_wave_and_not_the_devices_updating(
    pool, scheduler, ingest, commands
) -> None:
    """While wave 1's devices are told and silent, only the pending devices of
    wave 2 are sampled (wave 3 has no targets yet), each counted once however
    many heartbeats it sends."""
    fleet = await analysed_fleet(pool, 6)
    pid = await make_policy(pool, fleet.tenant, analysis=analysis_policy(ERR))
    rid = await make_rollout(pool, fleet, waves=3, policy_id=pid)
    await commands.start(fleet.tenant, rid)

    t = await wait_for(functools.partial(wave_two_written, pool, rid))
    baseline = [d for d in fleet.devices if d.id in t and t[d.id]["wave"] == 2]
    for value in (0.01, 0.03, 0.05):
        for d in fleet.devices:
            d.metrics = d.metrics | {"error_rate": value}
        # Each written before the next: a batch keeps a device's newest beat.
        await reported(pool, ingest, fleet.devices)

    async def three_beats_counted() -> None:
        agg = await aggregates(pool, rid)
        assert set(agg) == {(1, 1, "baseline", "error_rate")}
        devices, samples, total = agg[(1, 1, "baseline", "error_rate")]
        assert (devices, samples) == (2, 6)
        assert total == pytest.approx(2 * (0.01 + 0.03 + 0.05))

    await wait_for(three_beats_counted)
    marks = await pool.fetch(
        "SELECT device_id, analysed_window FROM rollout_targets WHERE rollout_id = $1",
        rid,
    )
    counted = {b.id for b in baseline}
    assert {r["device_id"]: r["analysed_window"] for r in marks} == {
        r["device_id"]: 1001 if r["device_id"] in counted else None for r in marks
    }
    await commands.abort(fleet.tenant, rid)
    await wait_for(lambda: has_status(pool, rid, "aborted"))


async def test_a_healthy_release_passes_and_the_last_wave_says_why_unjudged(
    pool, scheduler, ingest, commands
) -> None:
    fleet = await analysed_fleet(pool, 4)
    pid = await make_policy(
        pool,
        fleet.tenant,
        analysis=analysis_policy(ERR, "cpu: updated / baseline <= 1.3"),
    )
    rid = await make_rollout(pool, fleet, waves=2, policy_id=pid)
    await commands.start(fleet.tenant, rid)
    await drive(
        pool,
        ingest,
        rid,
        fleet.devices,
        applies_with(error_rate=0.015, cpu=22),
        until=status_is("completed"),
    )
    first, last = await runs(pool, rid)
    assert (
        "analysis passed: error_rate: updated - baseline = 0.005 <= 0.02"
        in (first["reason"])
    )
    assert "cpu: updated / baseline = 1.1 <= 1.3" in first["reason"]
    assert "analysis not judged in the last wave" in last["reason"]


async def test_too_few_devices_holds_the_rollout_with_a_reason(
    pool, scheduler, ingest, commands, events
) -> None:
    fleet = await analysed_fleet(pool, 4)
    pid = await make_policy(
        pool, fleet.tenant, analysis=analysis_policy(ERR, min_devices=3)
    )
    rid = await make_rollout(pool, fleet, waves=2, policy_id=pid)
    await commands.start(fleet.tenant, rid)
    row = await drive(
        pool,
        ingest,
        rid,
        fleet.devices,
        applies_with(error_rate=0.5),
        until=lambda r: "baseline 2 < min_devices 3" in (r["reason"] or ""),
    )
    assert row["status"] == "running"
    assert row["current_wave"] == 1
    assert row["reason"].startswith(
        "wave 1: analysis inconclusive, rollout held: error_rate: too few devices "
        "(updated 2 < min_devices 3; baseline 2 < min_devices 3)"
    )

    async def told() -> None:
        assert events.names(rid).count("analysis_held") == 1

    await wait_for(told)
    held = await pool.fetchrow(
        "SELECT hold, held_since FROM rollouts WHERE id = $1", rid
    )
    assert held["hold"] == "analysis_inconclusive"
    assert held["held_since"] is not None
    # Held, not guessed: more heartbeats of the same devices change nothing.
    await reported(pool, ingest, fleet.devices)
    await reported(pool, ingest, fleet.devices)
    await has_status(pool, rid, "running")
    # The operator's resume judges the wave again: still too few, held again.
    await commands.send(
        ResumeRollout(tenant=fleet.tenant, rollout_id=rid, requested_by="token:ops")
    )

    async def judged_again() -> None:
        assert events.names(rid).count("resumed") == 1
        assert events.names(rid).count("analysis_held") == 2

    await wait_for(judged_again)
    again = await pool.fetchrow("SELECT hold, reason FROM rollouts WHERE id = $1", rid)
    assert again["hold"] == "analysis_inconclusive"
    assert "baseline 2 < min_devices 3" in again["reason"]
    await commands.abort(fleet.tenant, rid)
    await wait_for(lambda: has_status(pool, rid, "aborted"))
    ended = await pool.fetchrow("SELECT hold FROM rollouts WHERE id = $1", rid)
    assert ended["hold"] is None


async def test_a_rollout_without_analysis_writes_no_aggregate(
    pool, scheduler, ingest, commands
) -> None:
    fleet = await analysed_fleet(pool, 4)
    rid = await make_rollout(pool, fleet, waves=2)
    await commands.start(fleet.tenant, rid)
    await drive(pool, ingest, rid, fleet.devices, applies, until=status_is("completed"))
    assert await aggregates(pool, rid) == {}


async def test_rollouts_running_side_by_side_each_aggregate_their_own_devices(
    pool, scheduler, ingest, commands
) -> None:
    """Devices of three running rollouts heartbeat into the same batches (two
    analysed, one not): each analysed rollout aggregates exactly its own
    baseline devices, once each, and the third nothing."""
    first = await analysed_fleet(pool, 6)
    fleets = [first]
    for channel in ("beta", "gamma"):
        devices = await add_devices(pool, first.tenant, 6, channel=channel)
        for d in devices:
            d.metrics = {"error_rate": 0.01}
        fleets.append(Fleet(first.tenant, first.artifact_id, devices))
    channels = ("stable", "beta", "gamma")
    rids = []
    for fleet, channel in zip(fleets, channels, strict=True):
        pid = (
            None
            if channel == "gamma"
            else await make_policy(pool, first.tenant, analysis=analysis_policy(ERR))
        )
        rid = await make_rollout(pool, fleet, waves=3, policy_id=pid, channel=channel)
        await commands.start(first.tenant, rid)
        rids.append(rid)

    for fleet, rate in zip(fleets, (0.01, 0.03, 0.05), strict=True):
        for d in fleet.devices:
            d.metrics = d.metrics | {"error_rate": rate}
    for rid in rids:
        await wait_for(functools.partial(wave_two_written, pool, rid))
    # Interleaved, so the consumer's batches hold devices of every rollout.
    mixed = [d for beat in zip(*(f.devices for f in fleets), strict=True) for d in beat]
    await reported(pool, ingest, mixed)

    async def counted() -> None:
        assert await aggregates(pool, rids[0]) == {
            (1, 1, "baseline", "error_rate"): (2, 2, pytest.approx(0.02))
        }
        assert await aggregates(pool, rids[1]) == {
            (1, 1, "baseline", "error_rate"): (2, 2, pytest.approx(0.06))
        }

    await wait_for(counted)
    assert await aggregates(pool, rids[2]) == {}
    for rid in rids:
        await commands.abort(first.tenant, rid)
        await wait_for(functools.partial(has_status, pool, rid, "aborted"))


async def test_the_heartbeat_that_applies_counts_as_updated_in_its_own_batch(
    pool, scheduler, ingest, commands
) -> None:
    """A device whose target is assigned when its heartbeat is written, and
    which that heartbeat reports applied, is sampled as updated by the same
    batch: as the batch's settling moved its target. While it is still
    assigned, its heartbeats are no sample."""
    fleet = await analysed_fleet(pool, 4)
    pid = await make_policy(pool, fleet.tenant, analysis=analysis_policy(ERR))
    rid = await make_rollout(pool, fleet, waves=2, policy_id=pid)
    await commands.start(fleet.tenant, rid)

    t = await wait_for(functools.partial(wave_two_written, pool, rid))
    first = [d for d in fleet.devices if t[d.id]["wave"] == 1]
    for d in first:
        d.metrics = d.metrics | {"error_rate": 0.02}
    # Told to update (this heartbeat still reports the old version: no sample)…
    await reported(pool, ingest, first, applies)
    assert await aggregates(pool, rid) == {}
    # …then the one heartbeat that reports the update.
    await reported(pool, ingest, first)

    async def applied_and_counted() -> None:
        after = await targets(pool, rid)
        assert {after[d.id]["state"] for d in first} == {"applied"}
        assert await aggregates(pool, rid) == {
            (1, 1, "updated", "error_rate"): (2, 2, pytest.approx(0.04))
        }

    await wait_for(applied_and_counted)
    await commands.abort(fleet.tenant, rid)
    await wait_for(lambda: has_status(pool, rid, "aborted"))
