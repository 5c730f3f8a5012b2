"""Planning benchmark: how long wave planning takes for N devices, in SQL.

Creates its own database on the server of ``XDP47_DB_URL`` (migrated, dropped at the
end), COPYs N devices of one tenant in, and plans a rollout of ``--waves`` waves
with the scheduler's real planning SQL (``write_plan``: count, rank with md5,
cut by ``wave_bounds``, INSERT the targets), timing planning plus writing the plan.
The baseline is the pure reference ``plan_waves`` over the same ids in Python
(ranking only; it writes nothing). One JSON line per size:

    uv run python bench/planning.py --devices 100000 1000000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
import uuid
from typing import Any

import asyncpg

from xdp47_common.adapters.migrations import migrate
from xdp47_common.adapters.planning import PlanTarget, write_plan
from xdp47_common.rollout import plan_waves, wave_sizes

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


async def bench_size(
    conn: asyncpg.Connection[Any], n: int, waves: int
) -> dict[str, Any]:
    """Plan one rollout over ``n`` fresh devices; return the figures."""
    tenant = f"bench-{uuid.uuid4().hex[:8]}"
    await conn.execute("INSERT INTO tenants (id, name) VALUES ($1, $1)", tenant)
    artifact = uuid.uuid4()
    await conn.execute(
        "INSERT INTO artifacts (id, tenant, uri, sha256) VALUES ($1, $2, 'x', $3)",
        artifact,
        tenant,
        "0" * 64,
    )
    ids = [f"dev-{i:08d}" for i in range(n)]
    await conn.copy_records_to_table(
        "devices",
        records=((tenant, i, "stable", "online") for i in ids),
        columns=["tenant", "id", "channel", "status"],
    )
    await conn.execute("ANALYZE devices")
    rid = uuid.uuid4()
    await conn.execute(
        "INSERT INTO rollouts (id, tenant, artifact_id, waves) VALUES ($1, $2, $3, $4)",
        rid,
        tenant,
        artifact,
        waves,
    )
    target = PlanTarget(rid, tenant, "stable", {}, waves)
    started = time.perf_counter()
    async with conn.transaction():
        sizes = await write_plan(conn, target)
    sql_seconds = time.perf_counter() - started
    started = time.perf_counter()
    reference = plan_waves(rid, ids, waves)
    python_seconds = time.perf_counter() - started
    return {
        "rollout_id": str(rid),
        "devices": n,
        "waves": waves,
        "sql_plan_and_write_seconds": round(sql_seconds, 3),
        "python_plan_waves_seconds": round(python_seconds, 3),
        "ratio_sql_over_python": round(sql_seconds / python_seconds, 2),
        "wave_sizes_ok": sizes == wave_sizes(n, waves)
        and sizes == [len(w) for w in reference],
    }


async def _main(sizes: list[int], waves: int, url: str) -> None:
    name = f"xdp47_bench_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        base, _, _ = url.rpartition("/")
        conn = await asyncpg.connect(f"{base}/{name}")
        try:
            await migrate(conn)
            for n in sizes:
                sys.stdout.write(json.dumps(await bench_size(conn, n, waves)) + "\n")
                sys.stdout.flush()
        finally:
            await conn.close()
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, nargs="+", default=[100_000])
    parser.add_argument("--waves", type=int, default=10)
    args = parser.parse_args()
    url = os.environ.get("XDP47_DB_URL", DEFAULT_URL)
    asyncio.run(_main(args.devices, args.waves, url))


if __name__ == "__main__":
    main()
