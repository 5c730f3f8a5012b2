"""DELETE /api/artifacts/{id}: refused while a draft or running rollout or a
device's kept desired state needs the artifact; otherwise it leaves the catalogue
and its uploaded bytes leave the store unless another artifact shares them."""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from tests.integration.api.support import auth, make_tenant, mint
from xdp47_common.models import Scope
from xdp47_common.settings import ControlSettings

pytestmark = pytest.mark.integration

OCTETS = {"Content-Type": "application/octet-stream"}


def _stored(settings: ControlSettings, sha256: str) -> bool:
    return (Path(settings.blob_dir) / "sha256" / sha256[:2] / sha256).is_file()


@pytest.fixture
async def token(pool: asyncpg.Pool[Any], tenant: str) -> str:
    scopes = {Scope.ARTIFACTS_WRITE, Scope.ARTIFACTS_READ}
    return await mint(pool, tenant, scopes, name="artifacts")


async def _upload(
    client: httpx.AsyncClient, token: str, tenant: str, content: bytes
) -> dict[str, Any]:
    r = await client.post(
        "/api/artifacts/upload",
        headers={**auth(token), **OCTETS},
        params={"tenant": tenant, "version": "1.0.0"},
        content=content,
    )
    assert r.status_code == 201, r.text
    return dict(r.json())


async def _rollout(
    pool: asyncpg.Pool[Any], artifact: dict[str, Any], status: str
) -> str:
    rollout_id = uuid.uuid4()
    await pool.execute(
        "INSERT INTO rollouts (id, tenant, artifact_id, waves, status) "
        "VALUES ($1, $2, $3, 1, $4)",
        rollout_id,
        artifact["tenant"],
        uuid.UUID(artifact["id"]),
        status,
    )
    return str(rollout_id)


async def test_delete_removes_the_artifact_and_its_bytes(
    client, token, tenant, api_settings
) -> None:
    artifact = await _upload(client, token, tenant, os.urandom(5000))
    assert _stored(api_settings, artifact["sha256"])
    r = await client.delete(f"/api/artifacts/{artifact['id']}", headers=auth(token))
    assert r.status_code == 204, r.text
    assert not _stored(api_settings, artifact["sha256"])
    got = await client.get(f"/api/artifacts/{artifact['id']}", headers=auth(token))
    assert got.status_code == 404
    listed = await client.get("/api/artifacts", headers=auth(token))
    assert artifact["id"] not in {a["id"] for a in listed.json()}
    again = await client.delete(f"/api/artifacts/{artifact['id']}", headers=auth(token))
    assert again.status_code == 404


async def test_shared_bytes_stay_until_the_last_artifact_goes(
    client, pool, token, tenant, api_settings
) -> None:
    content = os.urandom(4000)
    first = await _upload(client, token, tenant, content)
    other_tenant = await make_tenant(pool, "b")
    other_token = await mint(pool, other_tenant, {Scope.ARTIFACTS_WRITE}, name="o")
    second = await _upload(client, other_token, other_tenant, content)
    assert first["sha256"] == second["sha256"]
    r = await client.delete(f"/api/artifacts/{first['id']}", headers=auth(token))
    assert r.status_code == 204
    assert _stored(api_settings, first["sha256"]), "the other tenant still needs it"
    r = await client.delete(f"/api/artifacts/{second['id']}", headers=auth(other_token))
    assert r.status_code == 204
    assert not _stored(api_settings, first["sha256"])


@pytest.mark.parametrize("status", ["draft", "running"])
async def test_a_rollout_that_will_send_devices_to_it_is_409(
    client, pool, token, tenant, api_settings, status
) -> None:
    artifact = await _upload(client, token, tenant, os.urandom(3000))
    await _rollout(pool, artifact, status)
    r = await client.delete(f"/api/artifacts/{artifact['id']}", headers=auth(token))
    assert r.status_code == 409
    assert "rollout" in r.json()["detail"]
    assert _stored(api_settings, artifact["sha256"])
    got = await client.get(f"/api/artifacts/{artifact['id']}", headers=auth(token))
    assert got.status_code == 200


async def test_a_device_kept_on_it_is_409(
    client, pool, token, tenant, api_settings
) -> None:
    artifact = await _upload(client, token, tenant, os.urandom(3000))
    await pool.execute(
        "INSERT INTO devices (tenant, id, desired_artifact_id) VALUES ($1, $2, $3)",
        tenant,
        f"kept-{uuid.uuid4().hex[:8]}",
        uuid.UUID(artifact["id"]),
    )
    r = await client.delete(f"/api/artifacts/{artifact['id']}", headers=auth(token))
    assert r.status_code == 409
    assert "desired state of 1 device" in r.json()["detail"]
    assert _stored(api_settings, artifact["sha256"])


async def test_a_finished_rollout_keeps_naming_a_deleted_artifact(
    client, pool, token, tenant, api_settings
) -> None:
    artifact = await _upload(client, token, tenant, os.urandom(3000))
    rollout_id = await _rollout(pool, artifact, "completed")
    r = await client.delete(f"/api/artifacts/{artifact['id']}", headers=auth(token))
    assert r.status_code == 204, r.text
    assert not _stored(api_settings, artifact["sha256"])
    # The row stays for the rollout's history, hidden from the catalogue.
    named = await pool.fetchval(
        "SELECT a.version FROM rollouts r JOIN artifacts a ON a.id = r.artifact_id "
        "WHERE r.id = $1 AND a.deleted_at IS NOT NULL",
        uuid.UUID(rollout_id),
    )
    assert named == "1.0.0"
    got = await client.get(f"/api/artifacts/{artifact['id']}", headers=auth(token))
    assert got.status_code == 404
    content = await client.get(
        f"/api/artifacts/{artifact['id']}/content", headers=auth(token)
    )
    assert content.status_code == 404


async def test_another_tenants_artifact_is_404_and_reading_is_not_enough(
    client, pool, token, tenant
) -> None:
    artifact = await _upload(client, token, tenant, os.urandom(2000))
    other = await make_tenant(pool, "c")
    other_token = await mint(pool, other, {Scope.ARTIFACTS_WRITE}, name="o")
    r = await client.delete(
        f"/api/artifacts/{artifact['id']}", headers=auth(other_token)
    )
    assert r.status_code == 404
    reader = await mint(pool, tenant, {Scope.ARTIFACTS_READ}, name="r")
    r = await client.delete(f"/api/artifacts/{artifact['id']}", headers=auth(reader))
    assert r.status_code == 403
    r = await client.delete("/api/artifacts/not-a-uuid", headers=auth(token))
    assert r.status_code == 422
