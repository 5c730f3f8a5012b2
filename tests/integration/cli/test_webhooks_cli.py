"""``xdp47 webhooks ls|add|rm|deliveries|redeliver`` against a live API: the
secret printed once, a refused address as the API's message, a parked delivery
with its last error, and a redelivery."""

from __future__ import annotations

import json
import uuid

import asyncpg
import pytest

from tests.integration.cli.conftest import LiveApi

pytestmark = pytest.mark.integration


async def test_webhooks_commands(live_api: LiveApi, xdp47, db_url: str) -> None:
    login = xdp47(
        "login",
        "--url",
        live_api.url,
        "--token",
        live_api.token,
        "--tenant",
        live_api.tenant,
    )
    assert login.code == 0, login.stderr

    refused = xdp47("webhooks", "add", "http://127.0.0.1:9/hook")
    assert refused.code == 1
    assert "a loopback address" in refused.stderr

    added = xdp47(
        "webhooks", "add", "https://93.184.216.34/hook", "-e", "completed,failed"
    )
    assert added.code == 0, added.stderr
    assert "shown once" in added.stdout
    secret = added.stdout.strip().splitlines()[-1]
    assert secret.startswith("whsec_")

    listed = json.loads(xdp47("webhooks", "ls", "-o", "json").stdout)
    (hook,) = [w for w in listed if w["url"] == "https://93.184.216.34/hook"]
    assert hook["events"] == ["completed", "failed"]
    assert "secret" not in hook

    delivery = uuid.uuid4()
    conn = await asyncpg.connect(db_url)
    try:
        await conn.execute(
            "INSERT INTO webhook_deliveries (id, webhook_id, tenant, event_id, "
            "event, payload, status, attempts, last_status_code, last_error) "
            "VALUES ($1, $2, $3, $4, 'failed', '{}', 'parked', 6, 500, 'HTTP 500')",
            delivery,
            uuid.UUID(hook["id"]),
            live_api.tenant,
            uuid.uuid4(),
        )
    finally:
        await conn.close()
    table = xdp47("webhooks", "deliveries", hook["id"], "--status", "parked")
    assert table.code == 0, table.stderr
    assert str(delivery) in table.stdout
    assert "HTTP 500" in table.stdout

    again = xdp47("webhooks", "redeliver", hook["id"], str(delivery), "-o", "json")
    assert again.code == 0, again.stderr
    assert json.loads(again.stdout)["status"] == "pending"
    busy = xdp47("webhooks", "redeliver", hook["id"], str(delivery))
    assert busy.code == 1
    assert "pending" in busy.stderr

    gone = xdp47("webhooks", "rm", hook["id"])
    assert gone.code == 0, gone.stderr
    missing = xdp47("webhooks", "rm", hook["id"])
    assert missing.code == 1
    assert "not found" in missing.stderr
