"""The planning SQL applies exactly the pure planner's rule (one rule, two
implementations), writes nothing when previewing, and leaves out ineligible devices."""

from __future__ import annotations

import dataclasses
import json
import random
import uuid
from typing import Any, cast

import pytest

from tests.integration.scheduler.support import (
    add_artifact,
    add_devices,
    make_fleet,
    make_rollout,
)
from xdp47_common.adapters import selector_sql
from xdp47_common.adapters.plan_preview import rollout_plan
from xdp47_common.adapters.planning import (
    FORMS,
    PlanningForm,
    PlanTarget,
    candidate_filter,
    count_candidates,
    materialise_waves,
    planning_form,
    write_plan,
)
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
        preview = await rollout_plan(
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


class _Recorded:
    """A connection that records the statements planning runs on it."""

    def __init__(self, conn: Any) -> None:
        self._conn = conn
        self.statements: list[str] = []

    async def fetchval(self, query: str, *args: Any) -> Any:
        self.statements.append(query)
        return await self._conn.fetchval(query, *args)

    async def fetch(self, query: str, *args: Any) -> Any:
        self.statements.append(query)
        return await self._conn.fetch(query, *args)

    async def fetchrow(self, query: str, *args: Any) -> Any:
        self.statements.append(query)
        return await self._conn.fetchrow(query, *args)


async def test_no_declared_compatibility_plans_without_the_per_device_check(
    pool,
) -> None:
    """An artifact that declares no compatibility is compatible with every device,
    whatever its properties, and planning for it runs no per-device check; one
    that declares a compatibility keeps the check and plans only what it fits."""
    fleet = await make_fleet(pool, 0)
    props = {"arm-1": "arm64", "arm-2": "arm64", "x86-1": "x86_64", "none": None}
    await pool.executemany(
        "INSERT INTO devices (tenant, id, channel, properties) "
        "VALUES ($1, $2, 'stable', $3::text::jsonb)",
        [
            (fleet.tenant, d, json.dumps({"arch": a} if a else {}))
            for d, a in props.items()
        ],
    )
    fitted = dataclasses.replace(
        fleet,
        artifact_id=await add_artifact(
            pool, fleet.tenant, version="2.0", compatible={"arch": ["arm64"]}
        ),
    )
    checked = PlanTarget(
        await make_rollout(pool, fitted), fleet.tenant, "stable", {}, 1
    )
    anything = PlanTarget(
        await make_rollout(pool, fleet), fleet.tenant, "stable", {}, 1
    )
    compat_check = selector_sql.rollout_compatible("$1")
    async with pool.acquire() as conn:
        recorded = _Recorded(conn)
        assert await count_candidates(cast(Any, recorded), checked) == 2
        assert any(compat_check in s for s in recorded.statements)

        recorded = _Recorded(conn)
        async with conn.transaction():
            sizes = await write_plan(cast(Any, recorded), anything)
            written = await materialise_waves(cast(Any, recorded), anything, 1)
        assert not any(compat_check in s for s in recorded.statements)
    assert sizes == [4]
    assert written == 4
    planned = await pool.fetch(
        "SELECT device_id FROM rollout_targets WHERE rollout_id = $1",
        anything.rollout_id,
    )
    assert {r["device_id"] for r in planned} == set(props)


async def _planned_with_form(
    pool: Any, target: PlanTarget
) -> tuple[set[str], PlanningForm, list[str]]:
    """Plan and write every wave of ``target``: the devices planned, the form
    planning used and the statements it ran."""
    async with pool.acquire() as conn:
        recorded = _Recorded(conn)
        async with conn.transaction():
            form = await planning_form(conn, target.rollout_id)
            await write_plan(cast(Any, recorded), target)
            await materialise_waves(cast(Any, recorded), target, target.waves)
    rows = await pool.fetch(
        "SELECT device_id FROM rollout_targets WHERE rollout_id = $1",
        target.rollout_id,
    )
    return {r["device_id"] for r in rows}, form, recorded.statements


async def test_group_and_rollback_conditions_only_when_the_rollout_needs_them(
    pool,
) -> None:
    """A plain rollout plans by its selector with neither the group nor the
    rollback condition in its statements; a group rollout (static or dynamic)
    plans only the group's members; a rollback plans only the devices it sends
    back. Each carries its condition and no other."""
    fleet = await make_fleet(pool, 6, labels={"hw": "x"})
    other = await add_devices(pool, fleet.tenant, 2, labels={"hw": "y"})
    ids = [d.id for d in fleet.devices]
    await pool.execute(
        """UPDATE devices SET labels = '{"hw": "x", "site": "a"}'
        WHERE tenant = $1 AND id = ANY($2::text[])""",
        fleet.tenant,
        ids[2:4],
    )
    static, dynamic = uuid.uuid4(), uuid.uuid4()
    await pool.execute(
        "INSERT INTO device_groups (id, tenant, name, kind, selector) VALUES "
        """($1, $3, 'static', 'static', NULL),
        ($2, $3, 'dynamic', 'dynamic', '{"site": "a"}')""",
        static,
        dynamic,
        fleet.tenant,
    )
    await pool.executemany(
        "INSERT INTO device_group_members (tenant, group_id, device_id) "
        "VALUES ($1, $2, $3)",
        [(fleet.tenant, static, i) for i in ids[:2]],
    )

    async def rollout(**columns: Any) -> PlanTarget:
        rid = await make_rollout(pool, fleet, selector={"hw": "x"})
        if columns:
            sets = ", ".join(f"{c} = ${i}" for i, c in enumerate(columns, start=2))
            await pool.execute(
                f"UPDATE rollouts SET {sets} WHERE id = $1",  # nosec B608
                rid,
                *columns.values(),
            )
        return PlanTarget(rid, fleet.tenant, "stable", {"hw": "x"}, 1)

    def carries(statements: list[str], form: PlanningForm) -> bool:
        text = candidate_filter("$1", "$2", "$3", "$4", form)
        return any(text in s for s in statements)

    plain = await rollout()
    planned, form, statements = await _planned_with_form(pool, plain)
    assert planned == set(ids)
    assert not planned & {d.id for d in other}
    assert form == PlanningForm(compat=False, group=False, rollback=False)
    assert carries(statements, form)
    assert not any(carries(statements, f) for f in FORMS if f.group or f.rollback)
    # Undo ``plain``: devices 0-2 applied its artifact (from another one) and
    # run it still; device 3 went back already; devices 4-5 never applied it.
    old = await add_artifact(pool, fleet.tenant, version="1.0")
    await pool.execute(
        "UPDATE rollout_targets SET from_artifact_id = $2, active = false "
        "WHERE rollout_id = $1",
        plain.rollout_id,
        old,
    )
    await pool.execute(
        "UPDATE devices SET current_artifact_id = CASE WHEN id = ANY($3::text[]) "
        "THEN $2::uuid ELSE $4::uuid END WHERE tenant = $1",
        fleet.tenant,
        fleet.artifact_id,
        ids[:3],
        old,
    )
    await pool.execute(
        "UPDATE rollout_targets SET from_artifact_id = NULL "
        "WHERE rollout_id = $1 AND device_id = ANY($2::text[])",
        plain.rollout_id,
        ids[4:],
    )

    cases: list[tuple[dict[str, Any], set[str], PlanningForm]] = [
        ({"group_id": static}, set(ids[:2]), PlanningForm(False, True, False)),
        ({"group_id": dynamic}, set(ids[2:4]), PlanningForm(False, True, False)),
        (
            {"kind": "rollback", "rollback_of": plain.rollout_id},
            set(ids[:3]),
            PlanningForm(False, False, True),
        ),
    ]
    for columns, members, expected in cases:
        target = await rollout(**columns)
        planned, form, statements = await _planned_with_form(pool, target)
        assert planned == members, columns
        assert form == expected, columns
        assert carries(statements, form)
        await pool.execute(
            "UPDATE rollout_targets SET active = false WHERE rollout_id = $1",
            target.rollout_id,
        )
