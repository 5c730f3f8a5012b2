"""The device page shows per-device retries: each failed try of a finished
target with its code and message, and the next try of a running one."""

from __future__ import annotations

import json
import uuid
from typing import Any

import asyncpg
import pytest
from fastapi import FastAPI

from tests.integration.api.support import make_tenant, mint
from tests.integration.ui.support import insert_devices, signed_in
from xdp47_common.models import ALL_SCOPES

pytestmark = pytest.mark.integration


async def _rollout(
    pool: asyncpg.Pool[Any], tenant: str, artifact: uuid.UUID, status: str
) -> uuid.UUID:
    rid = uuid.uuid4()
    await pool.execute(
        "INSERT INTO rollouts (id, tenant, name, artifact_id, waves, status,"
        " current_wave, attempt) VALUES ($1, $2, $3, $4, 1, $5, 1, 1)",
        rid,
        tenant,
        f"r-{status}",
        artifact,
        status,
    )
    return rid


async def test_the_device_page_lists_the_failed_tries(
    pool: asyncpg.Pool[Any], ui_app: FastAPI
) -> None:
    tenant = await make_tenant(pool, "tries")
    await insert_devices(pool, tenant, ["kiosk-1"])
    artifact = uuid.uuid4()
    await pool.execute(
        "INSERT INTO artifacts (id, tenant, uri, sha256, version)"
        " VALUES ($1, $2, 'https://example.com/a', $3, '2.0')",
        artifact,
        tenant,
        "ab" * 32,
    )
    done = await _rollout(pool, tenant, artifact, "completed")
    tries = [
        {
            "attempt": n,
            "code": "download_failed",
            "reason": f"HTTP 503 #{n}",
            "at": "2030-01-01T00:00:00+00:00",
        }
        for n in (1, 2)
    ]
    await pool.execute(
        "INSERT INTO rollout_target_history (rollout_id, tenant, device_id, attempt,"
        " wave, state, device_attempt, attempts)"
        " VALUES ($1, $2, 'kiosk-1', 1, 1, 'applied', 3, $3::text::jsonb)",
        done,
        tenant,
        json.dumps(tries),
    )
    running = await _rollout(pool, tenant, artifact, "running")
    await pool.execute(
        "INSERT INTO rollout_targets (rollout_id, tenant, device_id, wave, state,"
        " device_attempt, retry_after, attempts)"
        " VALUES ($1, $2, 'kiosk-1', 1, 'assigned', 2, now() + interval '1 minute',"
        " $3::text::jsonb)",
        running,
        tenant,
        json.dumps(tries[:1]),
    )
    async with signed_in(ui_app, await mint(pool, tenant, ALL_SCOPES)) as client:
        page = await client.get("/ui/devices/kiosk-1")
    assert page.status_code == 200, page.text[:500]
    html = page.text
    assert "Device tries" in html
    assert 'data-device-attempt="3" data-failed-tries="2"' in html
    assert 'data-device-attempt="2" data-failed-tries="1"' in html
    assert "try 1: <code>download_failed</code>" in html
    assert "HTTP 503 #2" in html
    assert "try 2 not before" in html
