"""Scripted rollouts: the rows the scheduler writes for a rollout in a given
situation (``rollouts``, the compact plan, the written waves' targets, the runs),
written directly so a test can put a rollout exactly where it wants it.

A wave is a list of (stored target state, reason) per device, or None when the
wave is not written yet (it then holds ``size`` devices in the plan)."""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import httpx

from tests.integration.cli.conftest import LiveApi

Target = tuple[str, str | None]  # stored state, reason


@dataclass(frozen=True)
class Run:
    wave: int
    attempt: int = 1
    eligible: int = 3
    succeeded: int = 0
    failed: int = 0
    skipped: int = 0
    outcome: str | None = None


@dataclass
class Script:
    status: str
    current_wave: int | None
    waves: list[list[Target] | None]
    runs: list[Run]
    size: int = 3
    attempt: int = 1
    reason: str | None = None
    ids: dict[int, list[str]] = field(default_factory=dict)


async def draft(
    api: LiveApi, waves: int, selector: dict[str, str] | None = None
) -> uuid.UUID:
    headers = {"Authorization": f"Bearer {api.token}"}
    async with httpx.AsyncClient(base_url=api.url, headers=headers) as client:
        artifact = await client.post(
            "/api/artifacts",
            json={
                "tenant": api.tenant,
                "uri": "https://cdn.example/s.bin",
                "sha256": hashlib.sha256(b"s").hexdigest(),
            },
        )
        assert artifact.status_code == 201, artifact.text
        rollout = await client.post(
            "/api/rollouts",
            json={
                "tenant": api.tenant,
                "artifact_id": artifact.json()["id"],
                "waves": waves,
                "selector": selector or {},
            },
        )
        assert rollout.status_code == 201, rollout.text
        return uuid.UUID(rollout.json()["id"])


async def apply(pool: asyncpg.Pool[Any], api: LiveApi, s: Script) -> uuid.UUID:
    """Create a rollout and write the rows of ``s`` for it."""
    rid = await draft(api, len(s.waves))
    written = [w for w in s.waves if w is not None]
    tag = rid.hex[:8]
    async with pool.acquire() as conn, conn.transaction():
        for n, wave in enumerate(s.waves, start=1):
            ids = [f"{tag}-w{n}-{k}" for k in range(s.size)]
            s.ids[n] = ids
            await conn.executemany(
                "INSERT INTO devices (tenant, id, channel, status)"
                " VALUES ($1, $2, 'stable', 'online')",
                [(api.tenant, d) for d in ids],
            )
            # A rollout holds its devices while it runs; ending releases them.
            for d, (state, reason) in zip(ids, wave or [], strict=False):
                await conn.execute(
                    "INSERT INTO rollout_targets (rollout_id, tenant, device_id, wave,"
                    " state, reason, active) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                    rid,
                    api.tenant,
                    d,
                    n,
                    state,
                    reason,
                    s.status == "running",
                )
        waves = len(s.waves)
        await conn.execute(
            "INSERT INTO rollout_plans (rollout_id, total, bounds, firsts,"
            " materialised) VALUES ($1, $2, $3, $4, $5)",
            rid,
            s.size * waves,
            [s.size * k for k in range(1, waves + 1)],
            ["", *("~" for _ in range(waves - 1))],
            len(written),
        )
        for r in s.runs:
            await conn.execute(
                "INSERT INTO rollout_runs (rollout_id, wave, attempt, eligible,"
                " succeeded, failed, skipped, started_at, finished_at, outcome)"
                " VALUES ($1, $2, $3, $4, $5, $6, $7, now(),"
                " CASE WHEN $8::text IS NULL THEN NULL ELSE now() END, $8)",
                rid,
                r.wave,
                r.attempt,
                r.eligible,
                r.succeeded,
                r.failed,
                r.skipped,
                r.outcome,
            )
        await conn.execute(
            "UPDATE rollouts SET status = $2, current_wave = $3, attempt = $4,"
            " reason = $5, started_at = now(),"
            " finished_at = CASE WHEN $2 = 'running' THEN NULL ELSE now() END"
            " WHERE id = $1",
            rid,
            s.status,
            s.current_wave,
            s.attempt,
            s.reason,
        )
    return rid
