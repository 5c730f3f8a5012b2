"""Wave-advance benchmark (B4): gate satisfied -> next wave visible to devices.

Creates its own database on the server of ``XDP47_DB_URL`` (migrated, dropped at
the end), inserts N online devices of one tenant (``INSERT … SELECT
generate_series``, credential hash ``sha256('cred-<i>')``), and runs one rollout
of W waves with the scheduler's own engine (``RolloutEngine``: START writes the
plan and wave 1, its follow-up assigns wave 1 and writes wave 2 ahead). Then, for
each wave k = 1 .. W-1:

1. wait until the engine's follow-ups are done (the wave has been running a
   while, as under any real grace period);
2. make wave k's gate pass the way the heartbeat hook does: one UPDATE of the
   run's counter (``succeeded = eligible``), committed -> t0;
3. run ``engine.evaluate`` (lock, read counters, decide, flip ``current_wave``
   and insert the run row, commit) while a second task polls ingest's
   desired-state lookup (``xdp47_ingest.cache.DesiredCache``, exactly what every
   heartbeat and ``/desired`` asks: memory, invalidated by the flip's NOTIFY,
   else the indexed query) for a device of wave k+1 until it answers
   ``action=update`` for this rollout -> t1. That device was looked up (and so
   cached as "not told") just before, so the figure includes the notification's
   way to ingest.

``t1 - t0`` is the server-side latency (no HTTP, no poll interval). Also reported:
START (plan + wave 1 written), and the follow-up of each wave start (moving the
100k targets to assigned, writing the next wave ahead), which runs after the
flip's commit, off the critical path. Checks (a failed one prints ``"ok": false``
with no figure): every advance reached ``update`` for the right rollout, no
device of wave k+2 was told early, and every run's ``eligible`` equals the
targets of its wave. One JSON line:

    uv run python bench/wave_advance.py [--devices 1000000] [--waves 10]
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
from typing import Any

import asyncpg

from xdp47_common.adapters.migrations import migrate
from xdp47_common.adapters.pg import create_pool
from xdp47_common.messages import RolloutEvent, StartRollout
from xdp47_common.rollout import EffectivePolicy
from xdp47_ingest.cache import DesiredCache
from xdp47_scheduler.engine import RolloutEngine
from xdp47_scheduler.pg import PgRolloutStore

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
TARGET_MS = 100.0
POLICY = EffectivePolicy(
    require_ok=True,
    skip_offline=True,
    grace_seconds=0,
    min_success_ratio=1.0,
    max_failures_per_wave=0,
    abort_on_zero_eligible=False,
    wave_deadline_seconds=86400,
)

_FLEET = """
INSERT INTO devices (tenant, id, channel, status, last_seen, credential_hash)
SELECT $1, 'dev-' || lpad(i::text, 8, '0'), 'stable', 'online', now(),
       sha256(convert_to('cred-' || i, 'UTF8'))
FROM generate_series(0, $2 - 1) AS i
"""
_PASS_GATE = """
UPDATE rollout_runs AS rr SET succeeded = rr.eligible
FROM rollouts AS r
WHERE r.id = $1 AND rr.rollout_id = r.id AND rr.attempt = r.attempt
  AND rr.wave = r.current_wave
"""
_ONE_OF_WAVE = """
SELECT device_id FROM rollout_targets WHERE rollout_id = $1 AND wave = $2 LIMIT 1
"""
_RUNS_VS_TARGETS = """
SELECT rr.wave, rr.eligible, rr.skipped,
       (SELECT count(*) FROM rollout_targets AS t
        WHERE t.rollout_id = rr.rollout_id AND t.wave = rr.wave) AS targets
FROM rollout_runs AS rr WHERE rr.rollout_id = $1 ORDER BY rr.wave
"""


class _NoEvents:
    async def publish(self, events: Sequence[RolloutEvent]) -> None:
        return None


def _credential(device_id: str) -> str:
    return "cred-" + str(int(device_id.removeprefix("dev-")))


async def _told(cache: DesiredCache, device_id: str, rid: uuid.UUID) -> bool:
    view = await cache.lookup(_credential(device_id))
    assert view is not None, device_id
    if view.action != "update":
        return False
    # The cached answer is the desired state's JSON: which rollout says update.
    return bool(json.loads(view.payload).get("rollout_id") == str(rid))


async def _poll_until_told(
    cache: DesiredCache, device_id: str, rid: uuid.UUID, limit_s: float = 60
) -> float | None:
    """Poll the desired-state lookup; the perf_counter when it first says update."""
    deadline = time.perf_counter() + limit_s
    while time.perf_counter() < deadline:
        if await _told(cache, device_id, rid):
            return time.perf_counter()
        await asyncio.sleep(0)  # a hit never yields: let the listener run
    return None


async def run(url: str, n: int, waves: int) -> dict[str, Any]:
    conn = await asyncpg.connect(url)
    tenant = f"bench-{uuid.uuid4().hex[:8]}"
    artifact, rid = uuid.uuid4(), uuid.uuid4()
    try:
        await migrate(conn)
        await conn.execute("INSERT INTO tenants (id, name) VALUES ($1, $1)", tenant)
        await conn.execute(
            "INSERT INTO artifacts (id, tenant, uri, sha256) VALUES ($1, $2, 'x', $3)",
            artifact,
            tenant,
            "0" * 64,
        )
        started = time.perf_counter()
        await conn.execute(_FLEET, tenant, n)
        await conn.execute("VACUUM ANALYZE devices")
        fleet_s = time.perf_counter() - started
        await conn.execute(
            "INSERT INTO rollouts (id, tenant, artifact_id, waves) "
            "VALUES ($1, $2, $3, $4)",
            rid,
            tenant,
            artifact,
            waves,
        )
    finally:
        await conn.close()

    pool = await create_pool(url, min_size=2, max_size=6)
    engine = RolloutEngine(PgRolloutStore(pool), POLICY, _NoEvents())
    cache = DesiredCache(pool, db_url=url, max_entries=1000, ttl=3600, db_timeout=10)
    await cache.start()
    try:
        ok = cache.live
        started = time.perf_counter()
        await engine.handle_command(
            StartRollout(tenant=tenant, rollout_id=rid, requested_by="bench")
        )
        start_s = time.perf_counter() - started
        latencies: list[float] = []
        follow_ups: list[float] = []
        evaluate_ms: list[float] = []
        for k in range(1, waves):
            if not ok:
                break
            started = time.perf_counter()
            await engine.drain()
            follow_ups.append(time.perf_counter() - started)
            device = await pool.fetchval(_ONE_OF_WAVE, rid, k + 1)
            early = await pool.fetchval(_ONE_OF_WAVE, rid, k + 2)
            if device is None or await _told(cache, device, rid):
                ok = False  # wave k+1 must be written ahead and not told yet
                break
            await pool.execute(_PASS_GATE, rid)
            t0 = time.perf_counter()
            poll = asyncio.create_task(_poll_until_told(cache, device, rid))
            await engine.evaluate(rid)
            evaluate_ms.append((time.perf_counter() - t0) * 1000)
            t1 = await poll
            if t1 is None or (early is not None and await _told(cache, early, rid)):
                ok = False
                break
            latencies.append((t1 - t0) * 1000)
        started = time.perf_counter()
        await engine.drain()
        follow_ups.append(time.perf_counter() - started)
        rows = await pool.fetch(_RUNS_VS_TARGETS, rid)
        ok = ok and len(rows) == waves
        ok = ok and all(r["eligible"] + r["skipped"] == r["targets"] for r in rows)
    finally:
        await engine.drain()
        await cache.close()
        await pool.close()

    result: dict[str, Any] = {
        "bench": "B4",
        "devices": n,
        "waves": waves,
        "advances": len(latencies),
        "target_ms": TARGET_MS,
        "ok": ok,
    }
    if ok:
        ordered = sorted(latencies)
        p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
        result.update(
            p50_ms=round(statistics.median(latencies), 2),
            p99_ms=round(p99, 2),
            max_ms=round(max(latencies), 2),
            evaluate_p50_ms=round(statistics.median(evaluate_ms), 2),
            samples_ms=[round(x, 2) for x in latencies],
            start_wave1_s=round(start_s, 2),
            follow_up_median_s=round(statistics.median(follow_ups), 2),
            fleet_insert_s=round(fleet_s, 1),
        )
        result["ok"] = p99 <= TARGET_MS
    return result


async def _main(url: str, n: int, waves: int) -> int:
    name = f"xdp47_bench_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        base, _, _ = url.rpartition("/")
        result = await run(f"{base}/{name}", n, waves)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
    sys.stdout.write(json.dumps(result) + "\n")
    return 0 if result["ok"] else 1


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--devices", type=int, default=1_000_000)
    parser.add_argument("--waves", type=int, default=10)
    args = parser.parse_args()
    url = os.environ.get("XDP47_DB_URL", DEFAULT_URL)
    sys.exit(asyncio.run(_main(url, args.devices, args.waves)))


if __name__ == "__main__":
    main()
