"""A tenant's ``default_timezone`` (``PATCH /api/tenants/{id}``): an IANA zone
or a 422 naming the value, ``""`` clears it, and only a platform operator
(``tenants:write``) changes it, never another tenant's token."""

from __future__ import annotations

import pytest

from tests.integration.api.support import auth, make_tenant, mint
from xdp47_common.models import ALL_SCOPES, Scope

pytestmark = pytest.mark.integration


async def _zone(pool, tenant: str) -> object:
    return await pool.fetchval(
        "SELECT default_timezone FROM tenants WHERE id = $1", tenant
    )


async def test_default_timezone_is_validated_and_cleared(client, pool, tenant):
    operator = auth(await mint(pool, tenant, {Scope.TENANTS_WRITE}))
    url = f"/api/tenants/{tenant}"
    r = await client.patch(
        url, headers=operator, json={"default_timezone": "Mars/Olympus"}
    )
    assert r.status_code == 422
    assert "'Mars/Olympus' is not an IANA time zone" in r.text
    assert "default_timezone" in r.text
    assert await _zone(pool, tenant) is None

    r = await client.patch(
        url, headers=operator, json={"default_timezone": "Asia/Tokyo"}
    )
    assert r.status_code == 200, r.text
    assert r.json()["default_timezone"] == "Asia/Tokyo"
    r = await client.patch(url, headers=operator, json={"four_eyes_approval": True})
    assert r.json()["default_timezone"] == "Asia/Tokyo"  # left out: unchanged
    r = await client.patch(url, headers=operator, json={"default_timezone": ""})
    assert r.status_code == 200, r.text
    assert r.json()["default_timezone"] is None
    assert await _zone(pool, tenant) is None
    r = await client.patch(url, headers=operator, json={"default_timezone": "x" * 65})
    assert r.status_code == 422


async def test_another_tenants_token_cannot_change_the_zone(client, pool, tenant):
    other = await make_tenant(pool)
    admin = auth(await mint(pool, other, ALL_SCOPES - {Scope.TENANTS_WRITE}))
    r = await client.patch(
        f"/api/tenants/{tenant}", headers=admin, json={"default_timezone": "UTC"}
    )
    assert r.status_code == 403
    assert await _zone(pool, tenant) is None
    # Nor its own: the setting is a platform operator's.
    r = await client.patch(
        f"/api/tenants/{other}", headers=admin, json={"default_timezone": "UTC"}
    )
    assert r.status_code == 403
    # A tenant reads its own settings only.
    listed = (await client.get("/api/tenants", headers=admin)).json()
    assert [t["id"] for t in listed] == [other]
