"""The webhooks pages: add one (the secret shown once, an SSRF refusal next to
the URL field), its deliveries with status and last error, redeliver, delete;
read-only tokens get no form and no button."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import pytest
from fastapi import FastAPI

from tests.integration.api.support import make_tenant, mint
from tests.integration.ui.support import post_form, signed_in
from xdp47_common.models import Scope

pytestmark = pytest.mark.integration


async def test_add_refused_address_deliveries_and_redeliver(
    pool: asyncpg.Pool[Any], ui_app: FastAPI
) -> None:
    tenant = await make_tenant(pool, "ui")
    token = await mint(pool, tenant, [Scope.WEBHOOKS_WRITE])
    async with signed_in(ui_app, token) as client:
        refused = await post_form(
            client, "/ui/webhooks", "/ui/webhooks", {"url": "http://127.0.0.1:9/x"}
        )
        assert refused.status_code == 422
        assert "a loopback address" in refused.text
        assert "XDP47_WEBHOOK_ALLOW_PRIVATE" in refused.text
        assert not await pool.fetchval(
            "SELECT count(*) FROM webhooks WHERE tenant = $1", tenant
        )

        # The settings refuse private addresses: a public one is created
        # (resolution of a literal address needs no DNS).
        created = await post_form(
            client,
            "/ui/webhooks",
            "/ui/webhooks",
            {"url": "https://93.184.216.34/hook", "description": "ops"},
        )
        assert created.status_code == 201, created.text[:500]
        secret = await pool.fetchval(
            "SELECT secret FROM webhooks WHERE tenant = $1", tenant
        )
        assert secret in created.text  # shown once, here
        listed = await client.get("/ui/webhooks")
        assert "93.184.216.34" in listed.text
        assert secret not in listed.text

        hook_id = await pool.fetchval(
            "SELECT id FROM webhooks WHERE tenant = $1", tenant
        )
        delivery_id = uuid.uuid4()
        await pool.execute(
            "INSERT INTO webhook_deliveries (id, webhook_id, tenant, event_id, event, "
            "payload, status, attempts, last_status_code, last_error) "
            "VALUES ($1, $2, $3, $4, 'completed', '{}', 'parked', 6, 503, 'HTTP 503')",
            delivery_id,
            hook_id,
            tenant,
            uuid.uuid4(),
        )
        page = await client.get(f"/ui/webhooks/{hook_id}")
        assert page.status_code == 200
        assert "parked" in page.text
        assert "HTTP 503" in page.text
        assert f"/deliveries/{delivery_id}/redeliver" in page.text
        again = await post_form(
            client,
            f"/ui/webhooks/{hook_id}",
            f"/ui/webhooks/{hook_id}/deliveries/{delivery_id}/redeliver",
            {},
        )
        assert again.status_code == 303, again.text[:500]
        row = await pool.fetchrow(
            "SELECT status, attempts, redeliveries FROM webhook_deliveries "
            "WHERE id = $1",
            delivery_id,
        )
        assert row is not None
        assert (row["status"], row["attempts"], row["redeliveries"]) == (
            "pending",
            0,
            1,
        )

        gone = await post_form(
            client, "/ui/webhooks", f"/ui/webhooks/{hook_id}/delete", {}
        )
        assert gone.status_code == 303
        assert not await pool.fetchval(
            "SELECT count(*) FROM webhooks WHERE tenant = $1", tenant
        )


async def test_a_read_token_sees_no_form_and_another_tenant_gets_404(
    pool: asyncpg.Pool[Any], ui_app: FastAPI
) -> None:
    tenant = await make_tenant(pool, "ui")
    other = await make_tenant(pool, "ui")
    hook_id = uuid.uuid4()
    await pool.execute(
        "INSERT INTO webhooks (id, tenant, url, secret) VALUES ($1, $2, $3, 's')",
        hook_id,
        other,
        "https://93.184.216.34/x",
    )
    async with signed_in(ui_app, await mint(pool, tenant, [Scope.WEBHOOKS_READ])) as c:
        page = await c.get("/ui/webhooks")
        assert page.status_code == 200
        assert "Add a webhook" not in page.text
        assert (await c.get(f"/ui/webhooks/{hook_id}")).status_code == 404
