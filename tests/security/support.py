"""Helpers of the hostile-input suite: tenants with data, settings, running apps."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from fastapi import FastAPI

from tests.integration.api.support import make_tenant, mint
from xdp47_api import create_app as create_api
from xdp47_api.repositories import (
    PgArtifactRepository,
    PgDeviceRepository,
    PgPolicyRepository,
    PgRolloutRepository,
)
from xdp47_common.models import ALL_SCOPES, ArtifactCreate, PolicyCreate, RolloutCreate
from xdp47_common.settings import ControlSettings
from xdp47_common.tokens import SecretKind, hash_secret, new_secret
from xdp47_ingest import IngestSettings
from xdp47_ingest import create_app as create_ingest

MAX_BODY = 16 << 10
MAX_UPLOAD = 256 << 10


@dataclass(frozen=True)
class TenantData:
    """A tenant with one of everything, and a token holding every scope."""

    tenant: str
    token: str
    device_id: str
    device_credential: str
    artifact_id: str
    policy_id: str
    rollout_id: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    @property
    def device_auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.device_credential}"}


async def make_tenant_data(pool: asyncpg.Pool[Any], prefix: str) -> TenantData:
    """A tenant with a claimed device told to update, an artifact, a policy, a
    draft rollout and a token with every scope."""
    tenant = await make_tenant(pool, prefix)
    token = await mint(pool, tenant, ALL_SCOPES)
    credential = new_secret(SecretKind.DEVICE_CREDENTIAL)
    device_id = f"dev-{uuid.uuid4().hex[:10]}"
    await PgDeviceRepository(pool).claim(
        tenant, device_id, {"site": "a"}, "stable", hash_secret(credential)
    )
    content = f"{tenant} release".encode()
    artifact = await PgArtifactRepository(pool).create(
        ArtifactCreate(
            tenant=tenant,
            uri="https://artifacts.example/app.bin",
            sha256=hashlib.sha256(content).hexdigest(),
            size=len(content),
            version="1.0.0",
        )
    )
    policy = await PgPolicyRepository(pool).create(
        PolicyCreate(tenant=tenant, name="careful")
    )
    assert policy is not None  # a fresh tenant has no policy of that name
    rollout = await PgRolloutRepository(pool).create(
        RolloutCreate(tenant=tenant, artifact_id=artifact.id, policy_id=policy.id)
    )
    await pool.execute(
        "UPDATE devices SET desired_artifact_id = $3, desired_rollout_id = $4 "
        "WHERE tenant = $1 AND id = $2",
        tenant,
        device_id,
        artifact.id,
        rollout.id,
    )
    return TenantData(
        tenant=tenant,
        token=token,
        device_id=device_id,
        device_credential=credential,
        artifact_id=str(artifact.id),
        policy_id=str(policy.id),
        rollout_id=str(rollout.id),
    )


def api_settings(
    db_url: str, amqp_url: str, namespace: str, blob_dir: Path, **overrides: Any
) -> ControlSettings:
    values: dict[str, Any] = {
        "db_url": db_url,
        "amqp_url": amqp_url,
        "amqp_namespace": namespace,
        "max_body_bytes": MAX_BODY,
        "max_upload_bytes": MAX_UPLOAD,
        "blob_dir": str(blob_dir),
        "publish_timeout": 5.0,
        "db_pool_max": 4,
    }
    values.update(overrides)
    return ControlSettings(**values)


def ingest_settings(
    db_url: str, amqp_url: str, namespace: str, **overrides: Any
) -> IngestSettings:
    values: dict[str, Any] = {
        "db_url": db_url,
        "amqp_url": amqp_url,
        "amqp_namespace": namespace,
        "max_body_bytes": MAX_BODY,
        "publish_timeout": 5.0,
        "db_pool_max": 4,
    }
    values.update(overrides)
    return IngestSettings(**values)


def api_app(settings: ControlSettings) -> FastAPI:
    return create_api(settings)


def ingest_app(settings: IngestSettings) -> FastAPI:
    return create_ingest(settings)


@asynccontextmanager
async def serving(app: FastAPI, base_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """Run ``app``'s lifespan and talk to it in process."""
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url=base_url
        ) as client,
    ):
        yield client
