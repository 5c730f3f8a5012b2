"""Token handling against the database: no plaintext secret is stored, expiry and
revocation apply on every request, last use is recorded (throttled), and tokens
travel only in the Authorization header."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.integration.api.support import auth, mint
from xdp47_common.clock import utcnow
from xdp47_common.models import ALL_SCOPES, Scope

pytestmark = pytest.mark.integration

TEXTUAL = ("text", "character varying", "bytea", "jsonb", "json", "ARRAY")


async def _all_stored_text(pool) -> str:
    cols = await pool.fetch(
        "SELECT table_name, column_name, data_type FROM information_schema.columns "
        "WHERE table_schema = 'public' AND data_type = ANY($1::text[])",
        list(TEXTUAL),
    )
    chunks: list[str] = []
    for c in cols:
        q = f'SELECT "{c["column_name"]}"::text AS v FROM "{c["table_name"]}"'
        if c["data_type"] == "bytea":
            q = (
                f"SELECT encode(\"{c['column_name']}\", 'escape') AS v "
                f'FROM "{c["table_name"]}"'
            )
        chunks.extend(r["v"] or "" for r in await pool.fetch(q))
    return "\n".join(chunks)


async def test_no_plaintext_secret_in_the_database(client, pool, tenant):
    admin = await mint(pool, tenant, ALL_SCOPES)
    made = await client.post(
        "/api/tokens",
        headers=auth(admin),
        json={"name": "n", "scopes": ["devices:read"]},
    )
    claimed = await client.post(
        "/api/devices/claim", headers=auth(admin), json={"tenant": tenant}
    )
    secrets = [admin, made.json()["token"], claimed.json()["credential"]]
    dump = await _all_stored_text(pool)
    assert len(dump) > 1000  # the dump really read the tables
    for secret in secrets:
        body = secret.split("_", 1)[1]
        assert body not in dump
        assert body[:20] not in dump
    stored = await pool.fetchval(
        "SELECT token_hash FROM api_tokens WHERE id = $1::uuid", made.json()["id"]
    )
    assert len(stored) == 32


async def test_expired_token_is_refused(client, pool, tenant):
    old = await mint(
        pool, tenant, ALL_SCOPES, expires_at=utcnow() - timedelta(seconds=1)
    )
    r = await client.get("/api/devices", headers=auth(old))
    assert r.status_code == 401
    assert r.json()["detail"] == "token expired"
    fresh = await mint(
        pool, tenant, ALL_SCOPES, expires_at=utcnow() + timedelta(days=1)
    )
    assert (await client.get("/api/devices", headers=auth(fresh))).status_code == 200


async def test_revocation_applies_to_the_next_request(client, pool, tenant):
    token = await mint(pool, tenant, {Scope.DEVICES_READ})
    assert (await client.get("/api/devices", headers=auth(token))).status_code == 200
    await pool.execute(
        "UPDATE api_tokens SET revoked_at = now() WHERE tenant = $1", tenant
    )
    r = await client.get("/api/devices", headers=auth(token))
    assert r.status_code == 401
    assert r.json()["detail"] == "token revoked"


async def test_last_used_is_recorded_at_most_once_a_minute(client, pool, tenant):
    token = await mint(pool, tenant, {Scope.DEVICES_READ})
    q = "SELECT last_used_at FROM api_tokens WHERE tenant = $1"
    assert await pool.fetchval(q, tenant) is None
    await client.get("/api/devices", headers=auth(token))
    first = await pool.fetchval(q, tenant)
    assert first is not None
    await client.get("/api/devices", headers=auth(token))
    assert await pool.fetchval(q, tenant) == first
    await pool.execute(
        "UPDATE api_tokens SET last_used_at = last_used_at - interval '2 minutes' "
        "WHERE tenant = $1",
        tenant,
    )
    await client.get("/api/devices", headers=auth(token))
    assert await pool.fetchval(q, tenant) >= first


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Basic dXNlcjpwdw=="},
        {"Authorization": "Bearer "},
        {"Authorization": "Bearer xdp47t_tooshort"},
        {"Authorization": "Bearer devtoken123"},
    ],
)
async def test_missing_or_malformed_token_is_401(client, headers):
    r = await client.get("/api/devices", headers=headers)
    assert r.status_code == 401
    assert r.headers["WWW-Authenticate"] == "Bearer"


async def test_wellformed_unknown_token_is_401(client):
    from xdp47_common.tokens import SecretKind, new_secret

    r = await client.get("/api/devices", headers=auth(new_secret(SecretKind.API_TOKEN)))
    assert r.status_code == 401
    assert r.json()["detail"] == "unknown token"


@pytest.mark.parametrize("param", ["access_token", "token"])
async def test_token_in_query_string_is_401(client, pool, tenant, param):
    token = await mint(pool, tenant, ALL_SCOPES)
    r = await client.get(f"/api/devices?{param}={token}")
    assert r.status_code == 401
    # Even alongside a valid header: the secret has leaked into a URL.
    r = await client.get(f"/api/devices?{param}={token}", headers=auth(token))
    assert r.status_code == 401
    assert "query string" in r.json()["detail"]
