"""The planning benchmark runs and plans correctly at a small size (no timing)."""

from __future__ import annotations

import importlib.util
import uuid
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

_PATH = Path(__file__).parents[3] / "bench" / "planning.py"


async def test_bench_plans_the_right_wave_sizes(pool) -> None:
    spec = importlib.util.spec_from_file_location("bench_planning", _PATH)
    assert spec is not None
    assert spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    async with pool.acquire() as conn:
        result = await bench.bench_size(conn, 2000, 10)
        rows = await conn.fetch(
            "SELECT wave, count(*) AS n FROM rollout_targets WHERE rollout_id = $1 "
            "GROUP BY wave ORDER BY wave",
            uuid.UUID(result["rollout_id"]),
        )
    assert result["wave_sizes_ok"] is True
    assert [(r["wave"], r["n"]) for r in rows] == [(w, 200) for w in range(1, 11)]
