"""The SQL selector (migration 0016, ``adapters.selector_sql``) matches exactly the
devices the pure evaluator matches, on generated fleets and expressions, in the
real PostgreSQL; and a rollout's planned set is selector and group and
compatibility, whatever the selector says."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.integration.scheduler.support import make_fleet, make_rollout
from xdp47_common.adapters import selector_sql
from xdp47_common.adapters.plan_preview import rollout_plan
from xdp47_common.adapters.planning import PlanTarget
from xdp47_common.compat import compatibility_selector
from xdp47_common.rollout import RolloutStatus
from xdp47_common.selectors import Requirement, Selector, SelectorError

pytestmark = pytest.mark.integration

KEYS = ["model", "site", "k8s.io/arch", "ring", "a-b_c"]
# Values that a careless compilation would get wrong: quotes, backslashes,
# jsonpath syntax, parentheses (equality only), non-ASCII, the empty value.
VALUES = ["k2", "k3", "eu", 'q"t', "b\\s", "$.x", "x(y", "ü€", "", "'"]
keys = st.sampled_from(KEYS)
values = st.sampled_from(VALUES)
set_values = values.filter(lambda v: v and "(" not in v)


@st.composite
def requirements(draw: Any) -> Requirement:
    op = draw(st.sampled_from(["=", "!=", "in", "notin", "exists", "!"]))
    if op in ("=", "!="):
        vals: tuple[str, ...] = (draw(values),)
    elif op in ("in", "notin"):
        vals = tuple(draw(st.lists(set_values, min_size=1, max_size=4, unique=True)))
    else:
        vals = ()
    return Requirement(draw(keys), op, vals)


def _selector(found: list[Requirement]) -> Selector | None:
    """The selector the product would build from these requirements (None for
    one it refuses, e.g. two different values for one label)."""
    try:
        return Selector.from_json([r.to_json() for r in found])
    except SelectorError:
        return None


selectors = st.one_of(
    st.lists(requirements(), max_size=5).map(_selector).filter(bool),
    # The equality object form, as older rollouts store it.
    st.dictionaries(keys, values, max_size=3).map(Selector.from_mapping),
)
fleets = st.lists(st.dictionaries(keys, values, max_size=4), min_size=1, max_size=30)

_MATCHING = f"""
SELECT array_agg(t.i ORDER BY t.i) FROM jsonb_array_elements($1::text::jsonb)
    WITH ORDINALITY AS t(labels, i)
WHERE {selector_sql.matches("$2", "t.labels")}
"""  # nosec B608
_COMPATIBLE = f"""
SELECT array_agg(d.i ORDER BY d.i) FROM (
    SELECT t.properties, t.i FROM jsonb_array_elements($1::text::jsonb)
        WITH ORDINALITY AS t(properties, i)) AS d
WHERE {selector_sql.compatible("$2")}
"""  # nosec B608


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(fleets, selectors)
async def test_sql_matches_what_the_pure_evaluator_matches(pool, fleet, selector):
    got = await pool.fetchval(_MATCHING, json.dumps(fleet), selector.sql_json())
    expected = [i + 1 for i, labels in enumerate(fleet) if selector.matches(labels)]
    assert (got or []) == expected, selector.render()


@settings(
    max_examples=80,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    fleets,
    st.dictionaries(
        keys, st.lists(set_values, min_size=1, max_size=3, unique=True), max_size=3
    ),
)
async def test_sql_compatibility_is_the_pure_rule(pool, fleet, compatible):
    got = await pool.fetchval(_COMPATIBLE, json.dumps(fleet), json.dumps(compatible))
    rule = compatibility_selector(compatible)
    expected = [i + 1 for i, props in enumerate(fleet) if rule.matches(props)]
    assert (got or []) == expected


async def _labelled(
    pool, tenant: str, rows: list[tuple[str, dict[str, str], dict[str, str]]]
):
    await pool.executemany(
        "INSERT INTO devices (tenant, id, labels, properties, channel, status)"
        " VALUES ($1, $2, $3::text::jsonb, $4::text::jsonb, 'stable', 'online')",
        [(tenant, i, json.dumps(lab), json.dumps(props)) for i, lab, props in rows],
    )


async def _preview(pool, fleet, rid, selector) -> tuple[set[str], dict[str, str]]:
    target = PlanTarget(rid, fleet.tenant, "stable", selector, 1)
    async with pool.acquire() as conn:
        plan = await rollout_plan(
            conn, target, status=RolloutStatus.DRAFT, skip_offline=False, limit=100
        )
    planned = {d.device_id for w in plan.waves for d in w.devices}
    return planned, {e.device_id: e.reason.value for e in plan.excluded}


async def test_planning_is_selector_and_group_and_compatibility(pool) -> None:
    fleet = await make_fleet(pool, 0)
    arm = {"arch": "arm64"}
    await _labelled(
        pool,
        fleet.tenant,
        [
            ("k2-arm", {"model": "k2"}, arm),
            ("k3-arm", {"model": "k3", "ring": "canary"}, arm),
            ("k3-x86", {"model": "k3"}, {"arch": "x86_64"}),
            ("k4-arm", {"model": "k4"}, arm),
            ("k2-none", {"model": "k2"}, {}),
        ],
    )
    await pool.execute(
        'UPDATE artifacts SET compatible = \'{"arch": ["arm64"]}\' WHERE id = $1',
        fleet.artifact_id,
    )
    selector = Selector.from_json(
        [
            {"key": "model", "operator": "in", "values": ["k2", "k3"]},
            {"key": "ring", "operator": "notin", "values": ["canary"]},
        ]
    ).to_json()
    rid = await make_rollout(pool, fleet)
    await pool.execute(
        "UPDATE rollouts SET selector = $2::text::jsonb WHERE id = $1",
        rid,
        json.dumps(selector),
    )
    planned, excluded = await _preview(pool, fleet, rid, selector)
    assert planned == {"k2-arm"}
    assert excluded == {
        "k3-arm": "label_mismatch",
        "k4-arm": "label_mismatch",
        "k3-x86": "incompatible",
        "k2-none": "incompatible",
    }

    # A static group narrows the selector to its members.
    group = uuid.uuid4()
    await pool.execute(
        "INSERT INTO device_groups (id, tenant, name, kind)"
        " VALUES ($1, $2, 'g', 'static')",
        group,
        fleet.tenant,
    )
    await pool.executemany(
        "INSERT INTO device_group_members (tenant, group_id, device_id)"
        " VALUES ($1, $2, $3)",
        [(fleet.tenant, group, "k3-arm"), (fleet.tenant, group, "k4-arm")],
    )
    rid2 = await make_rollout(pool, fleet)
    await pool.execute("UPDATE rollouts SET group_id = $2 WHERE id = $1", rid2, group)
    planned, excluded = await _preview(pool, fleet, rid2, {})
    assert planned == {"k3-arm", "k4-arm"}
    assert excluded["k2-arm"] == "label_mismatch"

    # A dynamic group is its saved selector, read when the rollout is planned.
    dyn = uuid.uuid4()
    await pool.execute(
        "INSERT INTO device_groups (id, tenant, name, kind, selector)"
        " VALUES ($1, $2, 'd', 'dynamic', $3::text::jsonb)",
        dyn,
        fleet.tenant,
        json.dumps(
            Selector.from_json(
                [{"key": "model", "operator": "!=", "values": ["k2"]}]
            ).to_json()
        ),
    )
    rid3 = await make_rollout(pool, fleet)
    await pool.execute("UPDATE rollouts SET group_id = $2 WHERE id = $1", rid3, dyn)
    planned, _ = await _preview(pool, fleet, rid3, {})
    assert planned == {"k3-arm", "k4-arm"}
    await pool.execute(
        'UPDATE devices SET labels = \'{"model": "k5"}\' WHERE tenant = $1 AND id = $2',
        fleet.tenant,
        "k2-arm",
    )
    planned, _ = await _preview(pool, fleet, rid3, {})
    assert planned == {"k3-arm", "k4-arm", "k2-arm"}
