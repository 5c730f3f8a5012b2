"""Helpers for the API integration tests: tenants, tokens and an app per settings."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

import asyncpg
import httpx
from fastapi import FastAPI

from xdp47_api import create_app
from xdp47_api.repositories import PgTenantRepository, PgTokenRepository
from xdp47_common.models import Scope
from xdp47_common.settings import ControlSettings
from xdp47_common.tokens import SecretKind, display_prefix, hash_secret, new_secret


def unique_tenant(prefix: str = "t") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


async def make_tenant(pool: asyncpg.Pool[Any], prefix: str = "t") -> str:
    tenant = unique_tenant(prefix)
    assert await PgTenantRepository(pool).create(tenant, tenant) is not None
    return tenant


async def mint(
    pool: asyncpg.Pool[Any],
    tenant: str,
    scopes: Iterable[Scope],
    *,
    expires_at: datetime | None = None,
    name: str = "test",
) -> str:
    """Bootstrap a token straight into the database, as an operator would."""
    secret = new_secret(SecretKind.API_TOKEN)
    await PgTokenRepository(pool).create(
        tenant=tenant,
        name=name,
        prefix=display_prefix(secret),
        token_hash=hash_secret(secret),
        scopes=sorted(set(scopes)),
        created_by=None,
        expires_at=expires_at,
    )
    return secret


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@asynccontextmanager
async def running_app(settings: ControlSettings) -> AsyncIterator[FastAPI]:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        yield app


@asynccontextmanager
async def client_for(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as c:
        yield c
