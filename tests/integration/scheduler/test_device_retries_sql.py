"""Per-device retries in the scheduler's progress SQL, held to the pure rule
(``xdp47_common.rollout.retries.after_failure``): which failures are retried,
when, how often, the deadline, the late report of an earlier try, the counters
the gates read, the history and what ingest answers the device.

The engine starts the rollout; device reports are written as the heartbeat
write leaves them (``devices.last_apply``) and ``settle_devices`` runs in a
transaction of its own, as the heartbeat hook calls it."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

import asyncpg
import pytest

from xdp47_common.messages import RetryRollout, StartRollout
from xdp47_common.rollout import EffectivePolicy
from xdp47_common.rollout.retries import after_failure
from xdp47_common.tokens import hash_secret
from xdp47_ingest.pg import read_device
from xdp47_scheduler.engine import RolloutEngine
from xdp47_scheduler.pg.progress import settle_devices
from xdp47_scheduler.pg.rollouts import time_out_wave

from .support import (
    Fleet,
    SimDevice,
    gate_policy,
    make_fleet,
    make_policy,
    make_rollout,
    targets,
)

pytestmark = pytest.mark.integration

DEFAULTS = gate_policy(min_success_ratio=0.0, max_failures_per_wave=10)
RETRIES = {
    "max_device_retries": 2,
    "retry_backoff_seconds": 30,
    "retry_backoff_max_seconds": 45,
    "wave_deadline_seconds": 3600,
    "max_failures_per_wave": 10,
    "min_success_ratio": 0.0,
}


@pytest.fixture
def engine(sql_engine: Callable[[EffectivePolicy], RolloutEngine]) -> RolloutEngine:
    return sql_engine(DEFAULTS)


async def _running(
    pool: asyncpg.Pool[Any], engine: RolloutEngine, n: int, **policy: Any
) -> tuple[Fleet, uuid.UUID, EffectivePolicy]:
    fleet = await make_fleet(pool, n)
    pid = await make_policy(pool, fleet.tenant, **policy)
    rid = await make_rollout(pool, fleet, policy_id=pid)
    await engine.handle_command(
        StartRollout(tenant=fleet.tenant, rollout_id=rid, requested_by="tests")
    )
    await engine.drain()
    assert {t["state"] for t in (await targets(pool, rid)).values()} == {"assigned"}
    kept = await pool.fetchval(
        "SELECT effective_policy::text FROM rollouts WHERE id = $1", rid
    )
    return fleet, rid, EffectivePolicy.model_validate_json(kept)


async def _report(
    pool: asyncpg.Pool[Any],
    fleet: Fleet,
    d: SimDevice,
    code: str,
    *,
    rollout: uuid.UUID | None = None,
    device_attempt: int | None = None,
    at: str = "2030-01-01T00:00:00Z",
) -> None:
    """The device's last apply, as the heartbeat write stores it."""
    report: dict[str, Any] = {
        "artifact_id": str(fleet.artifact_id),
        "result": "failed",
        "code": code,
        "reason": f"{code} on try {device_attempt}",
        "at": at,
    }
    if rollout is not None:
        report |= {"rollout_id": str(rollout), "attempt": 1}
    if device_attempt is not None:
        report["device_attempt"] = device_attempt
    await pool.execute(
        "UPDATE devices SET last_apply = $3::text::jsonb WHERE tenant = $1 AND id = $2",
        fleet.tenant,
        d.id,
        json.dumps(report),
    )


async def _settle(
    pool: asyncpg.Pool[Any], fleet: Fleet, devices: Sequence[SimDevice]
) -> datetime:
    """Run the progress statement; return its transaction's now()."""
    async with pool.acquire() as conn, conn.transaction():
        now: datetime = await conn.fetchval("SELECT now()")
        await settle_devices(conn, [(fleet.tenant, d.id) for d in devices])
    return now


async def _run(pool: asyncpg.Pool[Any], rid: uuid.UUID) -> asyncpg.Record:
    row: asyncpg.Record | None = await pool.fetchrow(
        "SELECT * FROM rollout_runs WHERE rollout_id = $1", rid
    )
    assert row is not None
    return row


def _expect(
    target: asyncpg.Record, code: str, policy: EffectivePolicy, now: datetime
) -> None:
    """The target is what the pure rule says after its try failed with ``code``."""
    tried = target["device_attempt"] if target["state"] == "failed" else None
    failed_try = tried or target["device_attempt"] - 1
    deadline = target["assigned_at"] + timedelta(seconds=policy.wave_deadline_seconds)
    decision = after_failure(code, failed_try, policy, now, deadline)
    if decision.retry:
        assert target["state"] == "assigned", dict(target)
        assert target["retry_after"] == decision.retry_at
    else:
        assert target["state"] == "failed", dict(target)
        assert target["reason"] == code
        assert target["retry_after"] is None
    assert [a["attempt"] for a in target["attempts"]][-1] == failed_try
    assert target["attempts"][-1]["code"] == code


async def test_the_progress_sql_follows_the_pure_rule(
    pool: asyncpg.Pool[Any], engine: RolloutEngine
) -> None:
    fleet, rid, policy = await _running(pool, engine, 4, **RETRIES)
    assert (policy.max_device_retries, policy.retry_backoff_seconds) == (2, 30)
    flaky, tampered, legacy, good = fleet.devices
    await _report(pool, fleet, flaky, "download_failed", rollout=rid, device_attempt=1)
    await _report(
        pool, fleet, tampered, "sha256_mismatch", rollout=rid, device_attempt=1
    )
    await _report(pool, fleet, legacy, "apply_failed")  # an agent without the fields
    await pool.execute(
        "UPDATE devices SET current_artifact_id = $2, health = 'ok' WHERE id = $1",
        good.id,
        fleet.artifact_id,
    )
    now = await _settle(pool, fleet, fleet.devices)
    t = await targets(pool, rid)
    _expect(t[flaky.id], "download_failed", policy, now)
    _expect(t[tampered.id], "sha256_mismatch", policy, now)
    _expect(t[legacy.id], "apply_failed", policy, now)
    assert t[flaky.id]["device_attempt"] == 2
    assert t[flaky.id]["retry_after"] == now + timedelta(seconds=30)
    assert t[tampered.id]["device_attempt"] == 1  # failed at once, no retry
    assert t[good.id]["state"] == "applied"
    # The gates see two devices pending (retrying), never failed.
    run = await _run(pool, rid)
    assert (run["eligible"], run["succeeded"], run["failed"]) == (4, 1, 1)

    # Ingest answers the retrying device its next try and when.
    view = await read_device(pool, hash_secret(flaky.credential), db_timeout=5)
    assert view is not None
    answer = json.loads(view.payload)
    assert (answer["action"], answer["device_attempt"], answer["attempt"]) == (
        "update",
        2,
        1,
    )
    assert datetime.fromisoformat(answer["retry_after"]) == t[flaky.id]["retry_after"]

    # The same reports again (every heartbeat repeats them): nothing moves, and a
    # late report of try 1 (a new message) does not fail try 2.
    await _report(
        pool,
        fleet,
        flaky,
        "download_failed",
        rollout=rid,
        device_attempt=1,
        at="2030-01-01T00:00:09Z",
    )
    await _settle(pool, fleet, fleet.devices)
    again = await targets(pool, rid)
    for d in (flaky, legacy):
        assert (again[d.id]["state"], again[d.id]["device_attempt"]) == ("assigned", 2)
        assert len(again[d.id]["attempts"]) == 1

    # Try 2 fails: try 3 after min(60, 45) s; try 3 fails: no retry left.
    await _report(pool, fleet, flaky, "download_failed", rollout=rid, device_attempt=2)
    await _report(pool, fleet, legacy, "apply_failed", at="2030-01-01T00:01:00Z")
    now = await _settle(pool, fleet, fleet.devices)
    t = await targets(pool, rid)
    _expect(t[flaky.id], "download_failed", policy, now)
    _expect(t[legacy.id], "apply_failed", policy, now)
    assert t[flaky.id]["retry_after"] == now + timedelta(seconds=45)
    await _report(pool, fleet, flaky, "download_failed", rollout=rid, device_attempt=3)
    now = await _settle(pool, fleet, [flaky])
    t = await targets(pool, rid)
    _expect(t[flaky.id], "download_failed", policy, now)
    assert [(a["attempt"], a["code"]) for a in t[flaky.id]["attempts"]] == [
        (1, "download_failed"),
        (2, "download_failed"),
        (3, "download_failed"),
    ]
    assert t[flaky.id]["reason_detail"] == "download_failed on try 3"
    run = await _run(pool, rid)
    assert (run["succeeded"], run["failed"]) == (1, 2)

    # The history row of the outcome keeps the tries.
    history = await pool.fetchrow(
        "SELECT * FROM rollout_target_history WHERE rollout_id = $1 AND device_id = $2",
        rid,
        flaky.id,
    )
    assert history is not None
    assert history["state"] == "failed"
    assert history["device_attempt"] == 3
    assert len(history["attempts"]) == 3


async def test_a_retry_that_would_start_after_the_deadline_fails_now(
    pool: asyncpg.Pool[Any], engine: RolloutEngine
) -> None:
    fleet, rid, policy = await _running(pool, engine, 2, **RETRIES)
    early, late = fleet.devices
    # ``late``'s wave started 3,580 s ago: 20 s before its deadline, less than
    # the 30 s backoff; ``early``'s, 3,500 s ago: 100 s left.
    for d, ago in ((early, 3500), (late, 3580)):
        await pool.execute(
            "UPDATE rollout_targets SET assigned_at = now() - make_interval(secs => $3)"
            " WHERE rollout_id = $1 AND device_id = $2",
            rid,
            d.id,
            float(ago),
        )
        await _report(pool, fleet, d, "download_failed", rollout=rid, device_attempt=1)
    now = await _settle(pool, fleet, fleet.devices)
    t = await targets(pool, rid)
    _expect(t[early.id], "download_failed", policy, now)
    _expect(t[late.id], "download_failed", policy, now)
    assert t[early.id]["state"] == "assigned"
    assert t[late.id]["state"] == "failed"


async def test_a_rollout_without_retry_fields_fails_at_once(
    pool: asyncpg.Pool[Any], engine: RolloutEngine
) -> None:
    """A policy of no retries (and the kept policy of a rollout that predates
    the fields): the first failure is final."""
    fleet, rid, policy = await _running(pool, engine, 1, max_device_retries=0)
    (d,) = fleet.devices
    await _report(pool, fleet, d, "download_failed", rollout=rid, device_attempt=1)
    now = await _settle(pool, fleet, [d])
    t = await targets(pool, rid)
    _expect(t[d.id], "download_failed", policy, now)
    assert t[d.id]["state"] == "failed"


async def test_a_rollout_retry_starts_every_devices_tries_again(
    pool: asyncpg.Pool[Any], engine: RolloutEngine
) -> None:
    """The rollout's attempt and the device's try are distinct: a device that
    used its tries fails the wave; the operator's retry of the rollout (attempt
    2) starts it at try 1 with no failed tries, and the history keeps attempt
    1's tries."""
    fleet, rid, _ = await _running(
        pool,
        engine,
        1,
        max_device_retries=1,
        retry_backoff_seconds=0,
        max_failures_per_wave=0,
    )
    (d,) = fleet.devices
    for n in (1, 2):
        await _report(
            pool,
            fleet,
            d,
            "disk_full",
            rollout=rid,
            device_attempt=n,
            at=f"2030-01-01T00:00:0{n}Z",
        )
        await _settle(pool, fleet, [d])
    t = (await targets(pool, rid))[d.id]
    assert (t["state"], t["device_attempt"], len(t["attempts"])) == ("failed", 2, 2)
    await engine.evaluate(rid)
    assert await pool.fetchval("SELECT status FROM rollouts WHERE id = $1", rid) == (
        "failed"
    )
    await engine.handle_command(
        RetryRollout(tenant=fleet.tenant, rollout_id=rid, requested_by="tests")
    )
    await engine.drain()
    t = (await targets(pool, rid))[d.id]
    assert (t["state"], t["device_attempt"], t["attempts"], t["retry_after"]) == (
        "assigned",
        1,
        [],
        None,
    )
    view = await read_device(pool, hash_secret(d.credential), db_timeout=5)
    assert view is not None
    answer = json.loads(view.payload)
    assert (answer["attempt"], answer["device_attempt"]) == (2, 1)
    # The old report (attempt 1, try 2) does not fail the new attempt's try 1.
    await _settle(pool, fleet, [d])
    assert (await targets(pool, rid))[d.id]["state"] == "assigned"
    history = await pool.fetch(
        "SELECT attempt, device_attempt, attempts FROM rollout_target_history"
        " WHERE rollout_id = $1 AND device_id = $2",
        rid,
        d.id,
    )
    assert [
        (h["attempt"], h["device_attempt"], len(h["attempts"])) for h in history
    ] == [(1, 2, 2)]


async def test_a_device_still_retrying_at_the_deadline_times_out_with_its_tries(
    pool: asyncpg.Pool[Any], engine: RolloutEngine
) -> None:
    """The wave deadline bounds the retries: a device waiting for its next try
    when the wave times out fails as timed_out, the detail naming its tries."""
    fleet, rid, _ = await _running(pool, engine, 1, **RETRIES)
    (d,) = fleet.devices
    await _report(pool, fleet, d, "download_failed", rollout=rid, device_attempt=1)
    await _settle(pool, fleet, [d])
    assert (await targets(pool, rid))[d.id]["retry_after"] is not None
    async with pool.acquire() as conn, conn.transaction():
        assert await time_out_wave(conn, rid, 1, 1) == 1
    t = (await targets(pool, rid))[d.id]
    assert (t["state"], t["reason"], t["retry_after"]) == ("failed", "timed_out", None)
    assert (
        t["reason_detail"] == "while retrying: 1 failed try, the last download_failed"
    )
    assert [a["code"] for a in t["attempts"]] == ["download_failed"]
    run = await _run(pool, rid)
    assert run["failed"] == 1
