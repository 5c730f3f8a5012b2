"""Mass assignment: every write operation of the api's and ingest's OpenAPI
documents, with each server-owned field added to its body, is rejected (422) or
the field is ignored — never applied, checked in the database afterwards."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import asyncpg
import httpx
import pytest

from tests.integration.api.support import mint
from tests.security.support import (
    TenantData,
    api_app,
    api_settings,
    ingest_app,
    ingest_settings,
    make_tenant_data,
    serving,
)
from tests.support.amqp import drop_namespace
from xdp47_common.models import ALL_SCOPES, Scope
from xdp47_common.tokens import hash_secret

pytestmark = [pytest.mark.integration, pytest.mark.security]

SENTINELS: dict[str, Any] = {
    "tenant": "evil-mass",
    "tenant_id": "evil-mass",
    "id": "0e0e0e0e-0e0e-4e0e-8e0e-0e0e0e0e0e0e",
    "status": "completed",
    "scopes": ["tenants:write"],
    "created_at": "1999-12-31T00:00:00+00:00",
    "credential_hash": "deadbeef" * 8,
    "token_hash": "deadbeef" * 8,
    "last_seq": 987654321,
    "owner": "evil-owner",
}
_TRACES = (
    "evil-mass",
    "0e0e0e0e-0e0e",
    "1999-12-31",
    "deadbeef",
    "987654321",
    "evil-owner",
)
WRITE_METHODS = ("post", "put", "patch", "delete")


@pytest.fixture(scope="module")
async def owner(security_pool: asyncpg.Pool[Any]) -> TenantData:
    return await make_tenant_data(security_pool, "mass")


@pytest.fixture(scope="module")
async def clients(
    security_db_url: str,
    amqp_url: str,
    amqp_namespace: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[dict[str, httpx.AsyncClient]]:
    ns = f"{amqp_namespace}_mass"
    api = api_app(
        api_settings(
            security_db_url, amqp_url, ns, tmp_path_factory.mktemp("b"), rate_limit="0"
        )
    )
    ingest = ingest_app(
        ingest_settings(security_db_url, amqp_url, ns, device_rate_limit="0")
    )
    async with serving(api, "http://api") as a, serving(ingest, "http://ingest") as i:
        yield {"api": a, "ingest": i}
    await drop_namespace(amqp_url, ns)


def _operations(app_openapi: dict[str, Any]) -> list[tuple[str, str, set[str]]]:
    """(method, path, body fields) of every write operation."""
    ops = []
    schemas = app_openapi.get("components", {}).get("schemas", {})
    for path, item in app_openapi["paths"].items():
        for method, op in item.items():
            if method not in WRITE_METHODS:
                continue
            content = op.get("requestBody", {}).get("content", {})
            schema = content.get("application/json", {}).get("schema", {})
            ref = schema.get("$ref", "")
            if ref:
                schema = schemas[ref.rsplit("/", 1)[1]]
            ops.append((method.upper(), path, set(schema.get("properties", {}))))
    return ops


async def _dump(pool: asyncpg.Pool[Any]) -> str:
    tables = await pool.fetch(
        "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1"
    )
    parts = []
    for row in tables:
        name = row["tablename"]
        rows = await pool.fetch(
            "SELECT (row_to_json(t)::jsonb - 'last_used_at')::text AS r "
            f'FROM "{name}" t'
        )
        parts.append(name + ":" + "\n".join(sorted(r["r"] for r in rows)))
    return "\n".join(parts)


def _base(path: str, owner: TenantData, n: int) -> dict[str, Any]:
    t = owner.tenant
    bodies: dict[str, dict[str, Any]] = {
        "/api/devices/claim": {"tenant": t, "device_id": f"dev-mass-{n}"},
        "/api/artifacts": {
            "tenant": t,
            "uri": "https://x.example/a",
            "sha256": "a" * 64,
        },
        "/api/policies": {"tenant": t, "name": f"p{n}"},
        "/api/rollouts": {"tenant": t, "artifact_id": owner.artifact_id},
        "/api/tenants": {"id": f"mass-new-{n}", "name": "n"},
        "/api/tokens": {"name": f"n{n}", "scopes": ["devices:read"]},
        "/api/devices/{device_id}/heartbeat": {"seq": 10_000 + n},
    }
    return bodies.get(path, {})


def _url(path: str, owner: TenantData, revocable: str) -> str:
    return (
        path.replace("{device_id}", owner.device_id)
        .replace("{rollout_id}", owner.rollout_id)
        .replace("{token_id}", revocable)
    )


async def test_extra_fields_never_applied(
    clients: dict[str, httpx.AsyncClient],
    owner: TenantData,
    security_pool: asyncpg.Pool[Any],
    figure: Callable[[str], None],
) -> None:
    # The acting token holds everything but the tenant scopes, so a "scopes"
    # field that got applied anywhere would show as a token with tenants:write.
    actor = await mint(
        security_pool,
        owner.tenant,
        [s for s in ALL_SCOPES if s not in (Scope.TENANTS_READ, Scope.TENANTS_WRITE)],
    )
    auth = {"api": {"Authorization": f"Bearer {actor}"}, "ingest": owner.device_auth}
    docs = {name: (await c.get("/openapi.json")).json() for name, c in clients.items()}
    counts = {"cases": 0, "rejected_422": 0, "ignored": 0, "applied": 0}
    n = 0
    for service, doc in docs.items():
        for method, path, fields in _operations(doc):
            for field, value in SENTINELS.items():
                if field in fields:
                    continue  # a real field of this body, validated as such
                n += 1
                revocable = await _revocable(security_pool, owner.tenant)
                body = {**_base(path, owner, n), field: value}
                before = await _dump(security_pool)
                request: dict[str, Any] = {"headers": auth[service]}
                if path.endswith("/upload"):
                    request["params"] = {
                        "tenant": owner.tenant,
                        field: json.dumps(value),
                    }
                    request["content"] = b"bytes"
                    request["headers"] = {
                        **auth[service],
                        "content-type": "application/octet-stream",
                    }
                else:
                    request["json"] = body
                r = await clients[service].request(
                    method, _url(path, owner, revocable), **request
                )
                after = await _dump(security_pool)
                counts["cases"] += 1
                assert r.status_code < 500, (path, field, r.text)
                if r.status_code == 422:
                    counts["rejected_422"] += 1
                    assert after == before, (path, field)
                    continue
                leaked = [s for s in _TRACES if s in after and s not in before]
                granted = await security_pool.fetchval(
                    "SELECT count(*) FROM api_tokens WHERE tenant = $1 AND "
                    "'tenants:write' = ANY(scopes) AND id <> ALL($2::uuid[])",
                    owner.tenant,
                    await _fixture_tokens(security_pool, owner.tenant),
                )
                completed = await security_pool.fetchval(
                    "SELECT count(*) FROM rollouts WHERE status = 'completed'"
                )
                if leaked or granted or completed:
                    counts["applied"] += 1
                assert not leaked, (method, path, field, leaked)
                assert granted == 0, (method, path, field)
                assert completed == 0, (method, path, field)
                counts["ignored"] += 1
    figure(
        f"MASS ASSIGNMENT: cases={counts['cases']} "
        f"rejected_422={counts['rejected_422']} ignored={counts['ignored']} "
        f"applied={counts['applied']}"
    )
    assert counts["applied"] == 0


_FIXTURE_TOKENS: dict[str, list[uuid.UUID]] = {}


async def _fixture_tokens(pool: asyncpg.Pool[Any], tenant: str) -> list[uuid.UUID]:
    """The tokens minted with every scope by the fixtures (before the cases)."""
    if tenant not in _FIXTURE_TOKENS:
        rows = await pool.fetch(
            "SELECT id FROM api_tokens WHERE tenant = $1 AND 'tenants:write' = "
            "ANY(scopes)",
            tenant,
        )
        _FIXTURE_TOKENS[tenant] = [r["id"] for r in rows]
    return _FIXTURE_TOKENS[tenant]


async def _revocable(pool: asyncpg.Pool[Any], tenant: str) -> str:
    """A fresh token for :revoke and DELETE to act on."""
    await _fixture_tokens(pool, tenant)
    secret = await mint(pool, tenant, [Scope.DEVICES_READ])
    found = await pool.fetchval(
        "SELECT id FROM api_tokens WHERE token_hash = $1", hash_secret(secret)
    )
    return str(found)
