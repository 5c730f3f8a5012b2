"""Planning benchmark (B3): plan N devices into waves in SQL, against a Python loop.

Creates its own database on the server of ``XDP47_DB_URL`` (migrated, dropped at the
end) and inserts N devices of one tenant, labelled so that three equality
selectors match 100 %, 25 % and 7 % of them, and two set-based ones 50 %
(``hw in (rpi4,x86)``) and the same 7 % (``hw in (rpi4), ring notin (main)``):
their lines carry ``sql_over_equality``, the ratio of their SQL planning time to
the equality selector of the same share (``7%``; ``25%`` scaled for 50 %), so
``in``/``notin`` is held to B3's figure. For each selector it plans fresh
rollouts, in interleaved rounds (SQL, Python, SQL, Python, ...):

- ``sql``: the scheduler's ``write_plan`` (count, rank every candidate by md5 once,
  store the compact plan: each wave's first rank key), in one transaction;
- ``python_copy``: the classic Python loop (fetch the tenant's devices with their
  labels, filter, rank, assign each device its wave, COPY the assignment into an
  unindexed temporary table), the baseline of ``performance.md`` 4.2;
- ``python``: the same output as SQL from a Python loop over the same rows: fetch the
  candidate ids (filtered by the same SQL predicate, so Python gets no extra
  rows), rank them with the pure ``plan_waves`` rule, cut them with
  ``wave_bounds`` and write the same compact plan row.

Both must produce the identical plan (``same_plan``), and the stored plan must
give the waves ``wave_sizes`` predicts (``wave_sizes_ok``, one read-only count
per wave); a run that fails a check prints ``"ok": false`` and no figure. One JSON
line per (size, selector): median seconds of each, the median of the per-round
ratios to SQL with min and max, and the PostgreSQL backend's CPU seconds; for the
100 % selector also ``wave1_start_seconds``, the scheduler starting wave 1 (the
cost moved from planning to each wave start; not part of B3).

    uv run python bench/planning.py --devices 100000 1000000 [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import asyncpg

from xdp47_common.adapters import selector_sql
from xdp47_common.adapters.migrations import migrate
from xdp47_common.adapters.pg import SERVER_SETTINGS
from xdp47_common.adapters.planning import PlanTarget, write_plan
from xdp47_common.rollout import wave_bounds, wave_sizes
from xdp47_common.rollout.planner import ordering_key
from xdp47_common.selectors import Selector, SelectorJson, parse_selector

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
# selector name -> (selector, share of the fleet it matches)
SELECTORS: dict[str, SelectorJson] = {
    "100%": {},
    "25%": {"hw": "rpi4"},
    "7%": {"hw": "rpi4", "ring": "canary"},
    "in 50%": parse_selector("hw in (rpi4,x86)").to_json(),
    "in/notin 7%": parse_selector("hw in (rpi4),ring notin (main)").to_json(),
}
# A set-based selector's equality twin (the same share of the fleet, or half).
EQUALITY_TWIN: dict[str, tuple[str, float]] = {
    "in 50%": ("25%", 2.0),
    "in/notin 7%": ("7%", 1.0),
}

_IDS = f"""
SELECT d.id FROM devices AS d
WHERE d.tenant = $1 AND d.channel = $2 AND {selector_sql.matches("$3")}
  AND NOT EXISTS (SELECT 1 FROM rollout_targets AS o
                  WHERE o.tenant = d.tenant AND o.device_id = d.id AND o.active)
"""  # nosec B608
_SAVE = """
INSERT INTO rollout_plans (rollout_id, total, bounds, firsts)
VALUES ($1, $2, $3, $4)
"""
# hw cycles over 4 values (25 % rpi4); ring is canary for 28 % of the ids, evenly
# spread, so hw=rpi4 and ring=canary together match 7 %.
_FLEET = """
INSERT INTO devices (tenant, id, labels, channel, status)
SELECT $1, 'dev-' || lpad(i::text, 8, '0'),
       jsonb_build_object(
           'hw', (ARRAY['rpi4', 'rpi3', 'x86', 'jetson'])[i % 4 + 1],
           'ring', CASE WHEN (i::bigint * 7919) % 100 < 28 THEN 'canary'
                        ELSE 'main' END),
       'stable', 'online'
FROM generate_series(0, $2 - 1) AS i
"""
_STORED_SIZES = f"""
SELECT w.wave, count(*) AS n
FROM rollout_plans AS p CROSS JOIN devices AS d
CROSS JOIN LATERAL (SELECT width_bucket(
    (md5(p.rollout_id::text || ':' || d.id) || d.id) COLLATE "C", p.firsts) AS wave) w
WHERE p.rollout_id = $1 AND d.tenant = $2 AND {selector_sql.matches("$3")}
GROUP BY w.wave
"""  # nosec B608


def backend_cpu(pid: int) -> float:
    """CPU seconds (user + system) of a local process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def python_plan(conn: asyncpg.Connection[Any], target: PlanTarget) -> list[str]:
    """The Python-loop baseline: same rows, same rule, same plan row written."""
    rows = await conn.fetch(_IDS, target.tenant, target.channel, target.selector_json)
    ranked = sorted(ordering_key(target.rollout_id, r["id"]) + r["id"] for r in rows)
    bounds = wave_bounds(len(ranked), target.waves, target.wave_percentages)
    firsts = ["", *(ranked[b] if b < len(ranked) else "~" for b in bounds[:-1])]
    await conn.execute(_SAVE, target.rollout_id, len(ranked), bounds, firsts)
    return firsts


async def python_copy_plan(
    conn: asyncpg.Connection[Any], target: PlanTarget, tenant_rows: list[Any]
) -> int:
    """The classic Python loop (performance.md 4.2): filter the fetched tenant rows
    by the selector, rank, assign every device its wave and COPY the assignment
    into an unindexed temporary table (the cheapest way to write the rows)."""
    want = Selector.from_json(target.selector)
    ids = [
        r["id"]
        for r in tenant_rows
        if r["channel"] == target.channel and want.matches(r["labels"])
    ]
    ranked = sorted(ids, key=lambda d: ordering_key(target.rollout_id, d) + d)
    bounds = wave_bounds(len(ranked), target.waves, target.wave_percentages)
    rows, wave = [], 1
    for rank, device in enumerate(ranked, start=1):
        while rank > bounds[wave - 1]:
            wave += 1
        rows.append((target.rollout_id, device, wave))
    await conn.execute(
        "CREATE TEMP TABLE IF NOT EXISTS bench_assignment "
        "(rollout_id uuid, device_id text, wave int)"
    )
    await conn.copy_records_to_table("bench_assignment", records=rows)
    return len(rows)


async def fetch_tenant(conn: asyncpg.Connection[Any], tenant: str) -> list[Any]:
    """What the classic loop reads: every device of the tenant with its labels."""
    return [
        {"id": r["id"], "channel": r["channel"], "labels": json.loads(r["labels"])}
        for r in await conn.fetch(
            "SELECT id, channel, labels::text AS labels FROM devices WHERE tenant = $1",
            tenant,
        )
    ]


async def new_rollout(
    conn: asyncpg.Connection[Any],
    tenant: str,
    artifact: uuid.UUID,
    selector: SelectorJson,
    waves: int,
) -> PlanTarget:
    rid = uuid.uuid4()
    await conn.execute(
        "INSERT INTO rollouts (id, tenant, artifact_id, waves, selector) "
        "VALUES ($1, $2, $3, $4, $5::text::jsonb)",
        rid,
        tenant,
        artifact,
        waves,
        json.dumps(selector),
    )
    return PlanTarget(rid, tenant, "stable", selector, waves)


async def make_fleet(conn: asyncpg.Connection[Any], n: int) -> tuple[str, uuid.UUID]:
    """A tenant with ``n`` online devices and one artifact."""
    tenant = f"bench-{uuid.uuid4().hex[:8]}"
    await conn.execute("INSERT INTO tenants (id, name) VALUES ($1, $1)", tenant)
    artifact = uuid.uuid4()
    await conn.execute(
        "INSERT INTO artifacts (id, tenant, uri, sha256) VALUES ($1, $2, 'x', $3)",
        artifact,
        tenant,
        "0" * 64,
    )
    await conn.execute(_FLEET, tenant, n)
    await conn.execute("VACUUM ANALYZE devices")
    return tenant, artifact


async def bench_selector(
    conn: asyncpg.Connection[Any],
    tenant: str,
    artifact: uuid.UUID,
    n: int,
    name: str,
    *,
    waves: int,
    rounds: int,
) -> dict[str, Any]:
    """Interleaved rounds of SQL and Python planning for one selector."""
    selector = SELECTORS[name]
    pid = int(await conn.fetchval("SELECT pg_backend_pid()"))
    sql_s: list[float] = []
    py_s: list[float] = []
    copy_s: list[float] = []
    sql_cpu: list[float] = []
    ok = True
    last: PlanTarget | None = None
    sizes: list[int] = []
    for _ in range(rounds):
        target = await new_rollout(conn, tenant, artifact, selector, waves)
        cpu, started = backend_cpu(pid), time.perf_counter()
        async with conn.transaction():
            sizes = await write_plan(conn, target)
        sql_s.append(time.perf_counter() - started)
        sql_cpu.append(backend_cpu(pid) - cpu)
        sql_firsts = await conn.fetchval(
            "SELECT firsts FROM rollout_plans WHERE rollout_id = $1", target.rollout_id
        )
        twin = await new_rollout(conn, tenant, artifact, selector, waves)
        started = time.perf_counter()
        async with conn.transaction():
            await python_plan(conn, twin)
        py_s.append(time.perf_counter() - started)
        started = time.perf_counter()
        async with conn.transaction():
            copied = await python_copy_plan(
                conn, twin, await fetch_tenant(conn, tenant)
            )
            await conn.execute("TRUNCATE bench_assignment")
        copy_s.append(time.perf_counter() - started)
        ok = ok and copied == sum(sizes)
        if last is None:  # the Python rule under the SQL plan's id, untimed
            ranked = sorted(
                ordering_key(target.rollout_id, r["id"]) + r["id"]
                for r in await conn.fetch(_IDS, tenant, "stable", target.selector_json)
            )
            bounds = wave_bounds(len(ranked), waves)
            expect = ["", *(ranked[b] if b < len(ranked) else "~" for b in bounds[:-1])]
            ok = list(sql_firsts) == expect
        last = target
    assert last is not None
    matched = sum(sizes)
    stored = {
        r["wave"]: int(r["n"])
        for r in await conn.fetch(
            _STORED_SIZES, last.rollout_id, tenant, last.selector_json
        )
    }
    sizes_ok = sizes == wave_sizes(matched, waves) and [
        stored.get(w, 0) for w in range(1, waves + 1)
    ] == wave_sizes(matched, waves)
    ratios = [p / s for s, p in zip(sql_s, py_s, strict=True)]
    copy_ratios = [p / s for s, p in zip(sql_s, copy_s, strict=True)]
    result: dict[str, Any] = {
        "bench": "B3_planning",
        "devices": n,
        "selector": name,
        "matched": matched,
        "waves": waves,
        "rounds": rounds,
        "ok": ok and sizes_ok,
        "same_plan": ok,
        "wave_sizes_ok": sizes_ok,
    }
    if result["ok"]:
        result |= {
            "sql_seconds": round(statistics.median(sql_s), 3),
            "sql_backend_cpu_seconds": round(statistics.median(sql_cpu), 3),
            "python_loop_seconds": round(statistics.median(py_s), 3),
            "ratio_python_over_sql": round(statistics.median(ratios), 2),
            "ratio_min": round(min(ratios), 2),
            "ratio_max": round(max(ratios), 2),
            "python_copy_loop_seconds": round(statistics.median(copy_s), 3),
            "ratio_python_copy_over_sql": round(statistics.median(copy_ratios), 2),
            "ratio_copy_min": round(min(copy_ratios), 2),
            "ratio_copy_max": round(max(copy_ratios), 2),
        }
        if not selector:
            result["wave1_start_seconds"] = round(await wave_start(conn, last), 3)
    return result


async def wave_start(conn: asyncpg.Connection[Any], target: PlanTarget) -> float:
    """Time the scheduler's start of wave 1 (write its targets, tell its devices,
    set the run's counters) for a planned rollout; rolled back afterwards."""
    # The scheduler's own wave-start statement.
    from xdp47_scheduler.pg import rollouts, waves

    tr = conn.transaction()
    await tr.start()
    try:
        row = await rollouts.lock_rollout(conn, target.rollout_id)
        assert row is not None
        started = time.perf_counter()
        await waves.start_wave(conn, row, attempt=1, wave=1)
        return time.perf_counter() - started
    finally:
        await tr.rollback()


async def bench_size(
    conn: asyncpg.Connection[Any],
    n: int,
    waves: int,
    *,
    selectors: Sequence[str] = tuple(SELECTORS),
    rounds: int = 3,
) -> list[dict[str, Any]]:
    """All selectors over one fresh fleet of ``n`` devices."""
    tenant, artifact = await make_fleet(conn, n)
    results = [
        await bench_selector(
            conn, tenant, artifact, n, name, waves=waves, rounds=rounds
        )
        for name in selectors
    ]
    by_name = {r["selector"]: r for r in results}
    for r in results:
        twin_name, scale = EQUALITY_TWIN.get(r["selector"], (None, 1.0))
        twin = by_name.get(twin_name) if twin_name else None
        if twin is not None and r["ok"] and twin["ok"] and twin["sql_seconds"]:
            r["sql_over_equality"] = round(
                r["sql_seconds"] / (twin["sql_seconds"] * scale), 2
            )
    return results


async def _main(sizes: list[int], waves: int, rounds: int, url: str) -> int:
    name = f"xdp47_bench_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    failed = 0
    try:
        base, _, _ = url.rpartition("/")
        # The services' session settings (JIT off), so the SQL is timed as
        # the scheduler runs it.
        conn = await asyncpg.connect(f"{base}/{name}", server_settings=SERVER_SETTINGS)
        try:
            await migrate(conn)
            for n in sizes:
                for result in await bench_size(conn, n, waves, rounds=rounds):
                    failed += not result["ok"]
                    sys.stdout.write(json.dumps(result) + "\n")
                    sys.stdout.flush()
        finally:
            await conn.close()
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
    return 1 if failed else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--devices", type=int, nargs="+", default=[100_000])
    parser.add_argument("--waves", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    url = os.environ.get("XDP47_DB_URL", DEFAULT_URL)
    sys.exit(asyncio.run(_main(args.devices, args.waves, args.rounds, url)))


if __name__ == "__main__":
    main()
