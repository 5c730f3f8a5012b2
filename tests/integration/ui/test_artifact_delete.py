"""Deleting an artifact from the UI: a confirmation page first, then the same
rules as the API (409 shown on the page while a device keeps it), CSRF-checked."""

from __future__ import annotations

import os
import uuid
from typing import Any

import asyncpg
import pytest
from fastapi import FastAPI

from tests.integration.api.support import make_tenant, mint
from tests.integration.ui.support import csrf_of, signed_in
from xdp47_common.models import ALL_SCOPES, READ_SCOPES

pytestmark = pytest.mark.integration


async def _upload(client: Any, version: str) -> str:
    page = await client.get("/ui/artifacts")
    answer = await client.post(
        "/ui/artifacts/upload",
        data={"csrf_token": csrf_of(page.text), "version": version},
        files={"file": ("a.bin", os.urandom(3000), "application/octet-stream")},
    )
    assert answer.status_code == 303, answer.text
    created = answer.headers["location"].split("created=")[1]
    return str(uuid.UUID(created))


async def test_delete_asks_first_then_removes_the_artifact(
    pool: asyncpg.Pool[Any], ui_app: FastAPI
) -> None:
    tenant = await make_tenant(pool, "del")
    async with signed_in(ui_app, await mint(pool, tenant, ALL_SCOPES)) as client:
        artifact_id = await _upload(client, "9.9.9")
        listing = await client.get("/ui/artifacts")
        assert f'href="/ui/artifacts/{artifact_id}/delete"' in listing.text
        confirm = await client.get(f"/ui/artifacts/{artifact_id}/delete")
        assert confirm.status_code == 200
        assert "Delete artifact 9.9.9?" in confirm.text
        # Asking deleted nothing.
        assert (await client.get("/ui/artifacts")).text.count(artifact_id) >= 1
        no_token = await client.post(f"/ui/artifacts/{artifact_id}/delete", data={})
        assert no_token.status_code == 403
        done = await client.post(
            f"/ui/artifacts/{artifact_id}/delete",
            data={"csrf_token": csrf_of(confirm.text)},
        )
        assert done.status_code == 303
        assert done.headers["location"] == f"/ui/artifacts?deleted={artifact_id}"
        after = await client.get(done.headers["location"])
        assert 'data-flash="deleted"' in after.text
        assert f'data-artifact="{artifact_id}"' not in after.text
        gone = await client.get(f"/ui/artifacts/{artifact_id}/delete")
        assert gone.status_code == 404


async def test_a_kept_artifact_is_refused_on_the_page(
    pool: asyncpg.Pool[Any], ui_app: FastAPI
) -> None:
    tenant = await make_tenant(pool, "keep")
    async with signed_in(ui_app, await mint(pool, tenant, ALL_SCOPES)) as client:
        artifact_id = await _upload(client, "1.2.3")
        await pool.execute(
            "INSERT INTO devices (tenant, id, desired_artifact_id) "
            "VALUES ($1, 'd', $2)",
            tenant,
            uuid.UUID(artifact_id),
        )
        confirm = await client.get(f"/ui/artifacts/{artifact_id}/delete")
        refused = await client.post(
            f"/ui/artifacts/{artifact_id}/delete",
            data={"csrf_token": csrf_of(confirm.text)},
        )
        assert refused.status_code == 409
        assert "data-refused" in refused.text
        assert "kept desired state of 1 device" in refused.text
        assert (
            await client.get(f"/ui/artifacts/{artifact_id}/delete")
        ).status_code == 200


async def test_readers_see_no_delete_link_and_cannot_open_it(
    pool: asyncpg.Pool[Any], ui_app: FastAPI
) -> None:
    tenant = await make_tenant(pool, "ro")
    async with signed_in(ui_app, await mint(pool, tenant, ALL_SCOPES)) as client:
        artifact_id = await _upload(client, "0.0.1")
    async with signed_in(ui_app, await mint(pool, tenant, READ_SCOPES)) as client:
        assert "data-delete-artifact" not in (await client.get("/ui/artifacts")).text
        r = await client.get(f"/ui/artifacts/{artifact_id}/delete")
        assert r.status_code == 403
