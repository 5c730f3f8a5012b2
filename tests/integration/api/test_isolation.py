"""Tenant isolation: tenant B's all-scopes token on each of tenant A's ids answers
exactly like a missing id (404, same message) and changes nothing in the DB."""

from __future__ import annotations

import re
import uuid

import pytest

from tests.integration.api.support import auth, make_tenant, mint
from tests.integration.api.test_scope_matrix import REQUIRED
from xdp47_common.models import ALL_SCOPES

pytestmark = pytest.mark.integration

TABLES = ("devices", "artifacts", "policies", "rollouts", "api_tokens")


def _shape(detail: str) -> str:
    """The message with the quoted id blanked out."""
    return re.sub(r"'[^']*'", "'…'", detail)


async def _snapshot(pool, tenant):
    out = {}
    for table in TABLES:
        rows = await pool.fetch(
            f"SELECT * FROM {table} WHERE tenant = $1 ORDER BY id", tenant
        )
        out[table] = [dict(r) for r in rows]
    return out


async def test_another_tenants_ids_answer_404_and_change_nothing(client, pool):
    a = await make_tenant(pool, "a")
    b = await make_tenant(pool, "b")
    ha = auth(await mint(pool, a, ALL_SCOPES))
    hb = auth(await mint(pool, b, ALL_SCOPES))
    await client.post(
        "/api/devices/claim", headers=ha, json={"tenant": a, "device_id": "x1"}
    )
    art = await client.post(
        "/api/artifacts",
        headers=ha,
        json={"tenant": a, "uri": "https://e.com/a", "sha256": "1" * 64},
    )
    pol = await client.post(
        "/api/policies", headers=ha, json={"tenant": a, "name": "p"}
    )
    ro = await client.post(
        "/api/rollouts", headers=ha, json={"tenant": a, "artifact_id": art.json()["id"]}
    )
    tok = await client.post(
        "/api/tokens", headers=ha, json={"name": "t", "scopes": ["devices:read"]}
    )
    group = await client.post(
        "/api/groups", headers=ha, json={"tenant": a, "name": "g", "devices": ["x1"]}
    )
    a_ids = {
        "device_id": "x1",
        "artifact_id": art.json()["id"],
        "policy_id": pol.json()["id"],
        "rollout_id": ro.json()["id"],
        "token_id": tok.json()["id"],
        "group_id": group.json()["id"],
    }
    missing = {
        "device_id": "never-claimed",
        **{k: str(uuid.uuid4()) for k in a_ids if k != "device_id"},
    }
    before = await _snapshot(pool, a)
    checked = 0
    # A tenant's settings route is the platform operator's (tenants:write acts
    # on every tenant, as it lists and creates them): not a tenant-owned id.
    owned = [
        (m, t) for m, t in REQUIRED if "{" in t and not t.startswith("/api/tenants/")
    ]
    for method, template in owned:
        theirs = await client.request(method, template.format(**a_ids), headers=hb)
        absent = await client.request(method, template.format(**missing), headers=hb)
        assert theirs.status_code == 404, (method, template, theirs.text)
        assert _shape(theirs.json()["detail"]) == _shape(absent.json()["detail"])
        checked += 1
    assert checked == len(owned)  # every id route
    assert await _snapshot(pool, a) == before

    for path in ("/api/devices", "/api/artifacts", "/api/policies", "/api/rollouts"):
        assert (await client.get(path, headers=hb)).json() == []
    listed = await client.get("/api/tokens", headers=hb)
    assert a_ids["token_id"] not in {t["id"] for t in listed.json()}


async def test_rollout_for_another_tenant_is_404_and_writes_nothing(client, pool):
    a = await make_tenant(pool, "a")
    b = await make_tenant(pool, "b")
    ha = auth(await mint(pool, a, ALL_SCOPES))
    art = await client.post(
        "/api/artifacts",
        headers=ha,
        json={"tenant": a, "uri": "https://e.com/a", "sha256": "1" * 64},
    )
    r = await client.post(
        "/api/rollouts", headers=ha, json={"tenant": b, "artifact_id": art.json()["id"]}
    )
    assert r.status_code == 404
    assert r.json()["detail"] == f"tenant '{b}' not found"
    assert (
        await pool.fetchval("SELECT count(*) FROM rollouts WHERE tenant = $1", b) == 0
    )
