"""``xdp47-admin`` as an operator runs it: a subprocess on the test database whose
minted token then works against the API."""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from tests.integration.api.support import auth
from xdp47_common.tokens import SecretKind, hash_secret, looks_valid

# Each case starts the admin command several times; a Python start-up takes
# seconds on a loaded machine.
pytestmark = [pytest.mark.integration, pytest.mark.timeout(360)]

ADMIN = str(Path(sys.executable).parent / "xdp47-admin")


@dataclass
class Run:
    code: int
    out: str
    err: str


async def admin(db_url: str, *args: str) -> Run:
    env = {**os.environ, "XDP47_DB_URL": db_url}
    env.pop("XDP47_DEV_TOKEN_ENABLED", None)
    proc = await asyncio.create_subprocess_exec(
        ADMIN,
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode is not None
    return Run(proc.returncode, out.decode(), err.decode())


def _tenant_id() -> str:
    return f"adm-{uuid.uuid4().hex[:10]}"


async def test_create_tenant_then_mint_a_working_token(
    db_url: str, client, pool: asyncpg.Pool[Any]
):
    tenant = _tenant_id()
    made = await admin(db_url, "create-tenant", tenant, "--name", "Admin Test")
    assert made.code == 0, made.err
    assert tenant in made.out
    again = await admin(db_url, "create-tenant", tenant)
    assert again.code == 1
    assert f"tenant '{tenant}' already exists" in again.err

    minted = await admin(
        db_url,
        "mint-token",
        "--tenant",
        tenant,
        "--name",
        "bootstrap",
        "--scope",
        "tenants:write",
        "tokens:write",
        "--scope",
        "artifacts:read",
    )
    assert minted.code == 0, minted.err
    secret = minted.out.strip()
    assert looks_valid(secret, SecretKind.API_TOKEN)
    assert "shown once" in minted.err
    assert secret not in minted.err

    row = await pool.fetchrow(
        "SELECT tenant, name, scopes, created_by, expires_at FROM api_tokens "
        "WHERE token_hash = $1",
        hash_secret(secret),
    )
    assert row is not None
    assert row["tenant"] == tenant
    assert sorted(row["scopes"]) == ["artifacts:read", "tenants:write", "tokens:write"]
    assert row["created_by"] is None
    assert row["expires_at"] is not None  # 90 days by default

    tenants = await client.get("/api/tenants", headers=auth(secret))
    assert tenants.status_code == 200
    assert tenant in [t["id"] for t in tenants.json()]
    child = await client.post(
        "/api/tokens",
        headers=auth(secret),
        json={"name": "ci", "scopes": ["artifacts:read"]},
    )
    assert child.status_code == 201, child.text
    assert child.json()["tenant"] == tenant


async def test_no_expiry(db_url: str, pool: asyncpg.Pool[Any]):
    tenant = _tenant_id()
    assert (await admin(db_url, "create-tenant", tenant)).code == 0
    minted = await admin(
        db_url,
        "mint-token",
        "--tenant",
        tenant,
        "--name",
        "forever",
        "--scope",
        "devices:read",
        "--no-expiry",
    )
    assert minted.code == 0, minted.err
    expires = await pool.fetchval(
        "SELECT expires_at FROM api_tokens WHERE token_hash = $1",
        hash_secret(minted.out.strip()),
    )
    assert expires is None


async def test_refusals(db_url: str, pool: asyncpg.Pool[Any]):
    tenant = _tenant_id()
    assert (await admin(db_url, "create-tenant", tenant)).code == 0
    count = "SELECT count(*) FROM api_tokens WHERE tenant = $1"

    unknown = await admin(
        db_url,
        "mint-token",
        "--tenant",
        tenant,
        "--name",
        "x",
        "--scope",
        "devices:read",
        "root:all",
    )
    assert unknown.code == 2
    assert "unknown scope 'root:all'" in unknown.err
    assert "tokens:write" in unknown.err  # lists the known ones

    missing = await admin(
        db_url, "mint-token", "--tenant", "no-such", "--name", "x", "--scope", "x:y"
    )
    assert missing.code == 2  # the scope is checked first, without the database
    missing = await admin(
        db_url,
        "mint-token",
        "--tenant",
        "no-such-tenant",
        "--name",
        "x",
        "--scope",
        "devices:read",
    )
    assert missing.code == 1
    assert "tenant 'no-such-tenant' does not exist" in missing.err

    bad_days = await admin(
        db_url,
        "mint-token",
        "--tenant",
        tenant,
        "--name",
        "x",
        "--scope",
        "devices:read",
        "--expires-in-days",
        "0",
    )
    assert bad_days.code == 1
    assert "expires_in_days" in bad_days.err

    bad_id = await admin(db_url, "create-tenant", "Bad Tenant!")
    assert bad_id.code == 1
    assert bad_id.err.startswith("xdp47-admin: id:")
    assert await pool.fetchval(count, tenant) == 0


async def test_unreachable_database_is_one_line():
    run = await admin(
        "postgresql://postgres@127.0.0.1:1/none", "create-tenant", _tenant_id()
    )
    assert run.code == 1
    assert run.err.startswith("xdp47-admin: PostgreSQL at XDP47_DB_URL is unreachable")
    assert "Traceback" not in run.err
