"""``GET /api/rollouts/{id}/analysis``: where each check of the current wave
stands, judged on the stored aggregates, for the rollout's tenant only."""

from __future__ import annotations

import json
import uuid
from typing import Any

import asyncpg
import pytest

from tests.integration.api.support import auth, make_tenant, mint
from xdp47_common.models import ALL_SCOPES

pytestmark = pytest.mark.integration

ANALYSIS = {
    "checks": [
        "error_rate: updated - baseline <= 0.02",
        "cpu: updated / baseline <= 1.3",
    ],
    "min_devices": 2,
}


async def _rollout(
    pool: asyncpg.Pool[Any], tenant: str, *, waves: int, wave: int, analysis: Any
) -> uuid.UUID:
    artifact, rid = uuid.uuid4(), uuid.uuid4()
    await pool.execute(
        "INSERT INTO artifacts (id, tenant, uri, sha256) "
        "VALUES ($1, $2, 'https://x/a', $3)",
        artifact,
        tenant,
        "c" * 64,
    )
    policy = {"analysis": analysis}
    await pool.execute(
        "INSERT INTO rollouts (id, tenant, artifact_id, waves, status, current_wave, "
        "attempt, effective_policy) VALUES ($1, $2, $3, $4, 'running', $5, 1, $6)",
        rid,
        tenant,
        artifact,
        waves,
        wave,
        policy,
    )
    rows = [
        ("updated", "error_rate", 3, 6, 6 * 0.12),
        ("baseline", "error_rate", 3, 9, 9 * 0.01),
        ("updated", "cpu", 3, 6, 6 * 20.0),
        ("baseline", "cpu", 1, 2, 2 * 20.0),
    ]
    for cohort, metric, devices, samples, total in rows:
        await pool.execute(
            "INSERT INTO rollout_analysis (rollout_id, attempt, wave, cohort, metric,"
            " devices, samples, total) VALUES ($1, 1, $2, $3, $4, $5, $6, $7)",
            rid,
            wave,
            cohort,
            metric,
            devices,
            samples,
            total,
        )
    return rid


async def test_each_check_of_the_current_wave_with_both_cohorts(client, pool) -> None:
    tenant = await make_tenant(pool, "an")
    token = await mint(pool, tenant, ALL_SCOPES)
    rid = await _rollout(pool, tenant, waves=3, wave=1, analysis=ANALYSIS)
    r = await client.get(f"/api/rollouts/{rid}/analysis", headers=auth(token))
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["status"], body["attempt"], body["wave"]) == ("running", 1, 1)
    assert body["judged"] is True
    assert body["analysis"]["checks"] == ANALYSIS["checks"]
    err, cpu = body["checks"]
    assert err["check"] == "error_rate: updated - baseline <= 0.02"
    assert err["outcome"] == "fail"
    assert err["value"] == pytest.approx(0.11)
    assert err["updated"] == {"devices": 3, "samples": 6, "mean": pytest.approx(0.12)}
    assert err["baseline"] == {"devices": 3, "samples": 9, "mean": pytest.approx(0.01)}
    assert cpu["outcome"] == "inconclusive"
    assert cpu["value"] is None
    assert "baseline 1 < min_devices 2" in cpu["reason"]


async def test_the_last_wave_and_a_rollout_without_analysis_are_not_judged(
    client, pool
) -> None:
    tenant = await make_tenant(pool, "an")
    token = await mint(pool, tenant, ALL_SCOPES)
    last = await _rollout(pool, tenant, waves=2, wave=2, analysis=ANALYSIS)
    body = (
        await client.get(f"/api/rollouts/{last}/analysis", headers=auth(token))
    ).json()
    assert (body["judged"], body["checks"]) == (False, [])
    assert body["analysis"]["min_devices"] == 2
    plain = await _rollout(pool, tenant, waves=2, wave=1, analysis=None)
    body = (
        await client.get(f"/api/rollouts/{plain}/analysis", headers=auth(token))
    ).json()
    assert (body["analysis"], body["judged"], body["checks"]) == (None, False, [])


async def test_another_tenants_rollout_is_not_found(client, pool) -> None:
    owner = await make_tenant(pool, "an")
    rid = await _rollout(pool, owner, waves=3, wave=1, analysis=ANALYSIS)
    other = await mint(pool, await make_tenant(pool, "an"), ALL_SCOPES)
    r = await client.get(f"/api/rollouts/{rid}/analysis", headers=auth(other))
    assert r.status_code == 404
    missing = await client.get(
        f"/api/rollouts/{uuid.uuid4()}/analysis", headers=auth(other)
    )
    assert missing.status_code == 404
    assert json.loads(missing.text)["detail"]
