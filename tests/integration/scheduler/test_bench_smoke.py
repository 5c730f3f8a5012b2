"""The planning benchmark runs and plans correctly at a small size (no timing)."""

from __future__ import annotations

import importlib.util
import uuid
from pathlib import Path

import pytest

from xdp47_common.adapters.planning import PlanTarget, materialise_waves

pytestmark = pytest.mark.integration

_PATH = Path(__file__).parents[3] / "bench" / "planning.py"


async def test_bench_plans_the_right_wave_sizes(pool) -> None:
    spec = importlib.util.spec_from_file_location("bench_planning", _PATH)
    assert spec is not None
    assert spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    async with pool.acquire() as conn:
        results = await bench.bench_size(conn, 2000, 10, rounds=1)
        assert [r["selector"] for r in results] == [
            "100%",
            "25%",
            "7%",
            "in 50%",
            "in/notin 7%",
        ]
        assert all(r["ok"] and r["same_plan"] for r in results), results
        matched = [r["matched"] for r in results]
        assert matched[:2] == [2000, 500]
        # The set-based selectors match what their equality twins say.
        assert matched[3] == 1000
        assert matched[4] == matched[2]
        assert {"sql_over_equality"} <= set(results[3]) & set(results[4])
        # The compact plan of the last 100 % rollout, written out, is 10 x 200.
        rid = await conn.fetchval(
            "SELECT p.rollout_id FROM rollout_plans AS p JOIN rollouts AS r "
            "ON r.id = p.rollout_id WHERE r.tenant LIKE 'bench-%' AND p.total = 2000 "
            "ORDER BY p.planned_at DESC LIMIT 1"
        )
        tenant = await conn.fetchval("SELECT tenant FROM rollouts WHERE id = $1", rid)
        target = PlanTarget(rid, tenant, "stable", {}, 10)
        async with conn.transaction():
            assert await materialise_waves(conn, target, 10) == 2000
        rows = await conn.fetch(
            "SELECT wave, count(*) AS n FROM rollout_targets WHERE rollout_id = $1 "
            "GROUP BY wave ORDER BY wave",
            uuid.UUID(str(rid)),
        )
    assert [(r["wave"], r["n"]) for r in rows] == [(w, 200) for w in range(1, 11)]
