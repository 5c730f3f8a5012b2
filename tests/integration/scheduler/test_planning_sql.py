"""The planning SQL applies exactly the pure planner's rule (one rule, two
implementations), writes nothing when previewing, and leaves out ineligible devices."""

from __future__ import annotations

import random
import uuid

import pytest

from tests.integration.scheduler.support import add_devices, make_fleet, make_rollout
from xdp47_common.adapters.plan_preview import preview_plan
from xdp47_common.adapters.planning import PlanTarget, materialise_waves, write_plan
from xdp47_common.rollout import RolloutStatus, plan_waves, wave_sizes

pytestmark = pytest.mark.integration

_ALPHABET = "abcXYZ019_-"


def _mixed_case_ids(n: int, rng: random.Random) -> list[str]:
    ids: set[str] = set()
    while len(ids) < n:
        head = rng.choice("aAbBzZ09")
        ids.add(head + "".join(rng.choice(_ALPHABET) for _ in range(rng.randint(0, 8))))
    return sorted(ids)


@pytest.mark.parametrize(
    ("waves", "percentages"),
    [(3, None), (7, None), (4, [5, 15, 30, 50]), (3, [1, 0, 99])],
)
async def test_sql_plan_equals_the_reference(pool, waves, percentages) -> None:
    rng = random.Random(waves * 1000 + len(percentages or []))
    fleet = await make_fleet(pool, 0)
    ids = _mixed_case_ids(300, rng)
    await pool.executemany(
        "INSERT INTO devices (tenant, id, channel) VALUES ($1, $2, 'stable')",
        [(fleet.tenant, i) for i in ids],
    )
    rid = await make_rollout(pool, fleet, waves=waves, percentages=percentages)
    target = PlanTarget(rid, fleet.tenant, "stable", {}, waves, percentages)
    expected = plan_waves(rid, ids, waves, percentages)

    async with pool.acquire() as conn:
        preview = await preview_plan(
            conn, target, status=RolloutStatus.DRAFT, skip_offline=False, limit=1000
        )
        async with conn.transaction():
            sizes = await write_plan(conn, target)
            # The plan is stored compactly; writing every wave's targets must give
            # exactly the reference waves.
            written = await materialise_waves(conn, target, waves)
    assert sizes == wave_sizes(300, waves, percentages)
    assert written == 300
    rows = await pool.fetch(
        "SELECT device_id, wave FROM rollout_targets WHERE rollout_id = $1", rid
    )
    got = [
        sorted(r["device_id"] for r in rows if r["wave"] == w)
        for w in range(1, waves + 1)
    ]
    assert got == [sorted(w) for w in expected]
    # The preview lists each wave in rank order: exactly the reference order.
    assert [[d.device_id for d in w.devices] for w in preview.waves] == expected


async def test_planning_leaves_out_ineligible_devices(pool) -> None:
    fleet = await make_fleet(pool, 4, labels={"site": "a", "hw": "x"})
    other_site = await add_devices(pool, fleet.tenant, 2, labels={"site": "b"})
    beta = await add_devices(
        pool, fleet.tenant, 2, labels={"site": "a"}, channel="beta"
    )
    offline = await add_devices(
        pool, fleet.tenant, 1, labels={"site": "a"}, status="offline"
    )
    busy_rid = await make_rollout(pool, fleet, waves=1, selector={"hw": "x"})
    busy = fleet.devices[0]
    await pool.execute(
        "INSERT INTO rollout_targets (rollout_id, tenant, device_id, wave) "
        "VALUES ($1, $2, $3, 1)",
        busy_rid,
        fleet.tenant,
        busy.id,
    )
    rid = await make_rollout(pool, fleet, waves=2, selector={"site": "a"})
    target = PlanTarget(rid, fleet.tenant, "stable", {"site": "a"}, 2)
    async with pool.acquire() as conn, conn.transaction():
        sizes = await write_plan(conn, target)
        again = await write_plan(conn, target)  # idempotent
        await materialise_waves(conn, target, 2)
        assert await materialise_waves(conn, target, 2) == 0  # written once
    planned = {
        r["device_id"]
        for r in await pool.fetch(
            "SELECT device_id FROM rollout_targets WHERE rollout_id = $1", rid
        )
    }
    assert planned == {d.id for d in fleet.devices[1:] + offline}
    assert sum(sizes) == 4
    assert again == [0, 0]
    assert not planned & {d.id for d in other_site + beta}
    assert uuid.UUID(str(rid)) == rid
