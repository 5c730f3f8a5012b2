"""The telemetry analysis's sums on the real scheduler: the heartbeats of
devices counted in their window already go as sums per cohort, which count
only in the window they were decided by."""

from __future__ import annotations

import functools
from typing import Any

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
    applies,
    drive,
    make_policy,
    make_rollout,
    reported,
    targets,
    wait_for,
)
from xdp47_scheduler.pg import analysis
from xdp47_scheduler.ports import SummedSamples

pytestmark = pytest.mark.integration


async def test_sums_count_only_in_the_window_they_were_decided_by(
    pool, scheduler, commands
) -> None:
    """The statement adds the scheduler's sums (devices counted in the window
    already) to their cohort when their window is the rollout's current one,
    drops them otherwise, and answers the current window of each running
    rollout it was asked about."""
    fleet = await analysed_fleet(pool, 4)
    pid = await make_policy(pool, fleet.tenant, analysis=analysis_policy(ERR))
    rid = await make_rollout(pool, fleet, waves=2, policy_id=pid)
    await commands.start(fleet.tenant, rid)
    await wait_for(functools.partial(wave_two_written, pool, rid))
    unstarted = await make_rollout(pool, fleet, waves=2, policy_id=pid)
    sums = [
        SummedSamples(rid, 1001, "baseline", "error_rate", 3, 0.09),
        SummedSamples(rid, 1001, "updated", "error_rate", 1, 0.5),
        SummedSamples(rid, 1002, "baseline", "error_rate", 7, 7.0),  # wave 2's
        SummedSamples(rid, 2001, "baseline", "error_rate", 7, 7.0),  # attempt 2's
        SummedSamples(unstarted, 1001, "baseline", "error_rate", 7, 7.0),
    ]
    async with pool.acquire() as conn, conn.transaction():
        current = await analysis.record_samples(conn, [], sums, [rid, unstarted])
    assert current == {rid: 1001}
    assert await aggregates(pool, rid) == {
        (1, 1, "baseline", "error_rate"): (0, 3, pytest.approx(0.09)),
        (1, 1, "updated", "error_rate"): (0, 1, pytest.approx(0.5)),
    }
    assert await aggregates(pool, unstarted) == {}
    await commands.abort(fleet.tenant, rid)
    await wait_for(lambda: has_status(pool, rid, "aborted"))


async def test_wave_two_counts_its_own_cohorts_after_the_wave_changed(
    pool, scheduler, ingest, commands
) -> None:
    """When wave 2 starts, the scheduler still knows wave 1's window: the
    heartbeats of wave 1's devices (updated there, in no cohort now) that it
    sums by that window count nowhere, and each device counts once in each
    window it is in a cohort of (wave 2's devices: baseline in wave 1, updated
    in wave 2)."""
    fleet = await analysed_fleet(pool, 6)
    pid = await make_policy(pool, fleet.tenant, analysis=analysis_policy(ERR))
    rid = await make_rollout(pool, fleet, waves=3, policy_id=pid)
    await commands.start(fleet.tenant, rid)
    await drive(
        pool,
        ingest,
        rid,
        fleet.devices,
        applies_with(error_rate=0.01),
        until=lambda r: r["current_wave"] == 2,
    )

    async def wave_three_written() -> dict[str, Any]:
        t = await targets(pool, rid)
        assert sorted(r["wave"] for r in t.values()) == [1, 1, 2, 2, 3, 3]
        return t

    t = await wait_for(wave_three_written)
    by_wave = {w: [d for d in fleet.devices if t[d.id]["wave"] == w] for w in (1, 2, 3)}
    for d in by_wave[1]:
        d.metrics = d.metrics | {"error_rate": 0.9}  # counted in no cohort now
    # Wave 2's devices report 0.02 from here on: one told to update in drive's
    # last step applied with 0.01 there, but reports that only from now.
    for d in by_wave[2]:
        d.metrics = d.metrics | {"error_rate": 0.02}
    # Wave 1's devices first: the scheduler's first batch after the change.
    order = by_wave[1] + by_wave[3] + by_wave[2]

    async def counted_in_wave_two() -> None:
        await reported(pool, ingest, order, applies)
        agg = await aggregates(pool, rid)
        assert agg[(1, 2, "updated", "error_rate")][0] == 2
        assert agg[(1, 2, "baseline", "error_rate")][0] == 2

    await wait_for(counted_in_wave_two)
    agg = await aggregates(pool, rid)
    assert agg[(1, 1, "baseline", "error_rate")][0] == 2  # wave 2's, in wave 1
    _, samples, total = agg[(1, 2, "updated", "error_rate")]
    assert total == pytest.approx(0.02 * samples)
    _, samples, total = agg[(1, 2, "baseline", "error_rate")]
    assert total == pytest.approx(0.01 * samples)
    marks = await targets(pool, rid)
    assert {marks[d.id]["analysed_window"] for d in by_wave[1]} == {1001}
    assert {marks[d.id]["analysed_window"] for d in by_wave[2] + by_wave[3]} == {1002}
    await commands.abort(fleet.tenant, rid)
    await wait_for(lambda: has_status(pool, rid, "aborted"))
