"""``xdp47 rollouts watch`` against a live API, the rollout driven by writing its
rows in the database (the scheduler's job) while the CLI polls."""

from __future__ import annotations

import asyncio
import hashlib
import json
from pathlib import Path
from typing import Any
from uuid import UUID

import asyncpg
import httpx
import pytest

from tests.integration.cli.conftest import LiveApi, run_async

pytestmark = pytest.mark.integration


async def _draft(api: LiveApi) -> str:
    headers = {"Authorization": f"Bearer {api.token}"}
    async with httpx.AsyncClient(base_url=api.url, headers=headers) as client:
        artifact = await client.post(
            "/api/artifacts",
            json={
                "tenant": api.tenant,
                "uri": "https://cdn.example/w.bin",
                "sha256": hashlib.sha256(b"w").hexdigest(),
            },
        )
        assert artifact.status_code == 201, artifact.text
        rollout = await client.post(
            "/api/rollouts",
            json={
                "tenant": api.tenant,
                "artifact_id": artifact.json()["id"],
                "wave_percentages": [50, 50],
            },
        )
        assert rollout.status_code == 201, rollout.text
        return str(rollout.json()["id"])


async def _set(pool: asyncpg.Pool[Any], rid: str, status: str, wave: int) -> None:
    await pool.execute(
        # attempt 1, as the scheduler's start sets it (the target history
        # records each outcome under the rollout's attempt)
        "UPDATE rollouts SET status = $2, current_wave = $3, started_at = now(),"
        " attempt = greatest(attempt, 1),"
        " finished_at = CASE WHEN $2 = 'running' THEN NULL ELSE now() END,"
        " reason = CASE WHEN $2 = 'running' THEN NULL ELSE 'set by the test' END"
        " WHERE id = $1",
        UUID(rid),
        status,
        wave,
    )


async def _run(
    pool: asyncpg.Pool[Any], rid: str, wave: int, ok: int, failed: int
) -> None:
    """The rows the scheduler keeps for a wave of 4: its run's counters and its
    targets (``ok`` applied, ``failed`` failed, the rest told to update)."""
    states = ["applied"] * ok + ["failed"] * failed
    states += ["assigned"] * (4 - len(states))
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(
            "INSERT INTO rollout_runs (rollout_id, wave, attempt, eligible, succeeded,"
            " failed, started_at) VALUES ($1, $2, 1, 4, $3, $4, now())"
            " ON CONFLICT (rollout_id, attempt, wave)"
            " DO UPDATE SET succeeded = $3, failed = $4",
            UUID(rid),
            wave,
            ok,
            failed,
        )
        await conn.executemany(
            "INSERT INTO rollout_targets (rollout_id, tenant, device_id, wave, state)"
            " SELECT $1, tenant, $2, $3, $4 FROM rollouts WHERE id = $1"
            " ON CONFLICT (rollout_id, device_id) DO UPDATE SET state = $4",
            [
                (UUID(rid), f"{rid[:8]}-w{wave}-{n}", wave, state)
                for n, state in enumerate(states)
            ],
        )


async def _logged_in(xdp47, api: LiveApi) -> None:
    result = xdp47(
        "login", "--url", api.url, "--token", api.token, "--tenant", api.tenant
    )
    assert result.code == 0, result.stderr


async def _first_line(process: asyncio.subprocess.Process) -> str:
    assert process.stdout is not None
    line = await asyncio.wait_for(process.stdout.readline(), timeout=30)
    return line.decode()


@pytest.mark.parametrize(
    ("status", "code"),
    [("completed", 0), ("partial", 3), ("failed", 4), ("aborted", 5)],
)
async def test_watch_exits_with_the_code_of_the_terminal_status(
    live_api: LiveApi,
    xdp47,
    config_file: Path,
    pool: asyncpg.Pool[Any],
    status: str,
    code: int,
) -> None:
    await _logged_in(xdp47, live_api)
    rid = await _draft(live_api)
    await _set(pool, rid, "running", 1)
    await _run(pool, rid, 1, ok=1, failed=0)
    watcher = await run_async(
        config_file, "rollouts", "watch", rid, "--interval", "0.1", "--timeout", "60"
    )
    # The watcher has seen the running rollout before it moves on.
    assert (await _first_line(watcher)).startswith(f"rollout {rid} running")
    await _run(pool, rid, 1, ok=3, failed=1)
    await _run(pool, rid, 2, ok=2, failed=0)
    await _set(pool, rid, status, 2)
    stdout, stderr = await asyncio.wait_for(watcher.communicate(), timeout=60)
    assert watcher.returncode == code, stderr.decode()
    lines = stdout.decode().splitlines() + stderr.decode().splitlines()
    assert f"rollout {rid} {status}: set by the test" in lines
    assert any(line.startswith("wave 2 (attempt 1): 2 succeeded") for line in lines)


async def test_watch_of_a_stuck_rollout_times_out_with_6(
    live_api: LiveApi, xdp47, config_file: Path, pool: asyncpg.Pool[Any]
) -> None:
    await _logged_in(xdp47, live_api)
    rid = await _draft(live_api)
    await _set(pool, rid, "running", 1)
    watcher = await run_async(
        config_file, "rollouts", "watch", rid, "--interval", "0.2", "--timeout", "1"
    )
    _, stderr = await asyncio.wait_for(watcher.communicate(), timeout=60)
    assert watcher.returncode == 6
    assert (
        stderr.decode().strip() == f"timed out after 1s: rollout {rid} is still running"
    )


async def test_runs_and_get_show_what_the_database_holds(
    live_api: LiveApi, xdp47, pool: asyncpg.Pool[Any]
) -> None:
    await _logged_in(xdp47, live_api)
    rid = await _draft(live_api)
    await _set(pool, rid, "running", 1)
    await _run(pool, rid, 1, ok=2, failed=1)
    runs = json.loads(xdp47("rollouts", "runs", rid, "-o", "json").stdout)
    assert [(r["wave"], r["succeeded"], r["failed"]) for r in runs] == [(1, 2, 1)]
    got = json.loads(xdp47("rollouts", "get", rid, "-o", "json").stdout)
    assert (got["status"], got["current_wave"]) == ("running", 1)
    retried = xdp47("rollouts", "retry", rid)
    assert retried.code == 0, retried.stderr
    await _set(pool, rid, "completed", 2)
    refused = xdp47("rollouts", "abort", rid)
    assert refused.code == 1
    assert refused.stderr.startswith(
        "error: 409 cannot abort a rollout in status 'completed'"
    )
