"""Rollout actions publish their command to the real RabbitMQ: it arrives on the
namespace's ``scheduler.commands`` queue; meaningless actions answer 409 and
publish nothing; an unconfirmed publish answers 503 with Retry-After."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from tenacity import AsyncRetrying, stop_after_delay, wait_fixed

from tests.integration.api.support import auth, client_for, mint, running_app
from xdp47_common.adapters.amqp import connect
from xdp47_common.models import ALL_SCOPES
from xdp47_common.topology import Topology

pytestmark = pytest.mark.integration


@pytest.fixture
async def commands_queue(app, api_settings):
    topology = Topology(api_settings.amqp_namespace)
    connection = await connect(api_settings.amqp_url)
    async with connection:
        channel = await connection.channel()
        # The app's lifespan declared the topology; declare passively to use it.
        yield await channel.get_queue(topology.commands_queue)


async def _received(queue, rollout_id: str) -> list[dict[str, Any]]:
    """Poll the queue (bounded) until a command for ``rollout_id`` arrived."""
    found: list[dict[str, Any]] = []
    async for attempt in AsyncRetrying(
        stop=stop_after_delay(10), wait=wait_fixed(0.05), reraise=True
    ):
        with attempt:
            while (msg := await queue.get(no_ack=True, fail=False)) is not None:
                body = json.loads(msg.body)
                if body["rollout_id"] == rollout_id:
                    found.append(body | {"_routing_key": msg.routing_key})
            assert found, f"no command for {rollout_id} yet"
    return found


async def _rollout(client, pool, tenant, status="draft"):
    h = auth(await mint(pool, tenant, ALL_SCOPES))
    art = await client.post(
        "/api/artifacts",
        headers=h,
        json={"tenant": tenant, "uri": "https://e.com/a", "sha256": "2" * 64},
    )
    ro = await client.post(
        "/api/rollouts",
        headers=h,
        json={"tenant": tenant, "artifact_id": art.json()["id"]},
    )
    if status != "draft":
        await pool.execute(
            "UPDATE rollouts SET status = $1 WHERE id = $2",
            status,
            uuid.UUID(ro.json()["id"]),
        )
    return h, ro.json()["id"]


@pytest.mark.parametrize(
    ("action", "status", "message_type"),
    [
        ("start", "draft", "rollout.start"),
        ("start", "running", "rollout.start"),
        ("retry", "failed", "rollout.retry"),
        ("retry", "partial", "rollout.retry"),
        ("abort", "running", "rollout.abort"),
        ("abort", "draft", "rollout.abort"),
        # A repeat whose effect already holds: harmless, as in the scheduler.
        ("abort", "aborted", "rollout.abort"),
    ],
)
async def test_action_publishes_command(
    client, pool, tenant, commands_queue, action, status, message_type
):
    h, rid = await _rollout(client, pool, tenant, status)
    r = await client.post(f"/api/rollouts/{rid}:{action}", headers=h)
    assert r.status_code == 202, r.text
    assert r.json()["id"] == rid
    [msg] = await _received(commands_queue, rid)
    assert msg["type"] == message_type
    assert msg["_routing_key"] == message_type
    assert msg["tenant"] == tenant
    assert msg["requested_by"].startswith("token:")


@pytest.mark.parametrize(
    ("action", "status"),
    [
        ("start", "completed"),
        ("start", "aborted"),
        ("retry", "draft"),
        ("retry", "completed"),
        ("abort", "completed"),
        ("abort", "failed"),
    ],
)
async def test_meaningless_action_is_409(client, pool, tenant, action, status):
    h, rid = await _rollout(client, pool, tenant, status)
    r = await client.post(f"/api/rollouts/{rid}:{action}", headers=h)
    assert r.status_code == 409
    assert f"cannot {action} a rollout in status '{status}'" in r.json()["detail"]


async def test_unconfirmed_publish_is_503_with_retry_after(
    client, pool, tenant, api_settings
):
    """A second app whose publishing channel is gone: the broker cannot confirm."""
    h, rid = await _rollout(client, pool, tenant)
    async with running_app(api_settings) as broken:
        await broken.state.services.publisher.close()
        async with client_for(broken) as c:
            r = await c.post(f"/api/rollouts/{rid}:start", headers=h)
    assert r.status_code == 503
    assert int(r.headers["Retry-After"]) > 0
    assert "start" in r.json()["detail"]


async def test_missing_rollout_action_is_404(client, pool, tenant):
    h = auth(await mint(pool, tenant, ALL_SCOPES))
    r = await client.post(f"/api/rollouts/{uuid.uuid4()}:abort", headers=h)
    assert r.status_code == 404
