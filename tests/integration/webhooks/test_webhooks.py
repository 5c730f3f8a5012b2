"""Webhooks on the real PostgreSQL and RabbitMQ: the API (scopes, tenants, SSRF),
signed deliveries once per event id, retries with growing delays through the
delay queues, parking with the last error, and a redelivery by hand."""

from __future__ import annotations

import itertools
import time
import uuid
from typing import Any

import asyncpg
import httpx
import pytest

from tests.integration.api.support import auth, make_tenant, mint
from tests.integration.scheduler.support import wait_for
from tests.integration.webhooks.receiver import Receiver
from xdp47_common.adapters.amqp import AmqpPublisher
from xdp47_common.messages import RolloutEvent
from xdp47_common.models import Scope
from xdp47_common.topology import Topology
from xdp47_common.webhooks import verify
from xdp47_scheduler.webhooks.service import WebhookWorker

pytestmark = pytest.mark.integration


async def subscribe(
    api: httpx.AsyncClient, headers: dict[str, str], url: str, **extra: Any
) -> dict[str, Any]:
    r = await api.post("/api/webhooks", json={"url": url, **extra}, headers=headers)
    assert r.status_code == 201, r.text
    created: dict[str, Any] = r.json()
    return created


async def publish(
    publisher: AmqpPublisher, topology: Topology, event: RolloutEvent
) -> None:
    key = topology.rollout_event_key(event.tenant, event.event)
    await publisher.publish(topology.events, key, event)


async def test_subscriptions_are_tenant_isolated_and_the_secret_shown_once(
    api: httpx.AsyncClient,
    headers: dict[str, str],
    pool: asyncpg.Pool[Any],
    tenant: str,
) -> None:
    created = await subscribe(
        api, headers, "http://127.0.0.1:9/x", events=["completed", "failed"]
    )
    assert created["secret"].startswith("whsec_")
    assert created["events"] == ["completed", "failed"]
    listed = (await api.get("/api/webhooks", headers=headers)).json()
    assert [w["id"] for w in listed] == [created["id"]]
    assert "secret" not in listed[0]
    one = await api.get(f"/api/webhooks/{created['id']}", headers=headers)
    assert one.status_code == 200
    assert "secret" not in one.json()

    stranger = await make_tenant(pool, "wh")
    other = auth(await mint(pool, stranger, [Scope.WEBHOOKS_WRITE]))
    assert (await api.get("/api/webhooks", headers=other)).json() == []
    for method, path in (
        ("GET", f"/api/webhooks/{created['id']}"),
        ("DELETE", f"/api/webhooks/{created['id']}"),
        ("GET", f"/api/webhooks/{created['id']}/deliveries"),
        (
            "POST",
            f"/api/webhooks/{created['id']}/deliveries/{uuid.uuid4()}:redeliver",
        ),
    ):
        r = await api.request(method, path, headers=other)
        assert r.status_code == 404, (method, path, r.text)

    reader = auth(await mint(pool, tenant, [Scope.WEBHOOKS_READ]))
    assert (await api.get("/api/webhooks", headers=reader)).status_code == 200
    refused = await api.post(
        "/api/webhooks", json={"url": "http://127.0.0.1:9/"}, headers=reader
    )
    assert refused.status_code == 403

    gone = await api.delete(f"/api/webhooks/{created['id']}", headers=headers)
    assert gone.status_code == 204
    assert (await api.get("/api/webhooks", headers=headers)).json() == []


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({"url": "ftp://example.com/x"}, "http:// or https://"),
        ({"url": "http://user:pw@example.com/"}, "credentials"),
        ({"url": "http://no-such-host.invalid/"}, "does not resolve"),
        ({"url": "http://127.0.0.1:9/", "events": ["nope"]}, "unknown event"),
        ({"url": "http://127.0.0.1:9/", "secret": "mine"}, "extra"),
    ],
)
async def test_bad_subscriptions_are_refused_with_a_reason(
    api: httpx.AsyncClient, headers: dict[str, str], body: dict[str, Any], says: str
) -> None:
    r = await api.post("/api/webhooks", json=body, headers=headers)
    assert r.status_code == 422, r.text
    assert says in r.text


async def test_every_event_reaches_the_receiver_once_signed(
    worker: WebhookWorker,
    api: httpx.AsyncClient,
    headers: dict[str, str],
    tenant: str,
    receiver: Receiver,
    events_publisher: AmqpPublisher,
    topology: Topology,
) -> None:
    hook = await subscribe(api, headers, receiver.url)
    only_done = await subscribe(
        api, headers, receiver.url + "?done", events=["completed"]
    )
    rid = uuid.uuid4()
    events = [
        RolloutEvent(tenant=tenant, rollout_id=rid, event="started"),
        RolloutEvent(tenant=tenant, rollout_id=rid, event="wave_started", wave=1),
        RolloutEvent(tenant=tenant, rollout_id=rid, event="completed"),
    ]
    # Another tenant's event never reaches this tenant's hooks.
    stranger = RolloutEvent(tenant="someone-else", rollout_id=rid, event="completed")
    for event in (*events, *events, stranger):  # each published twice
        await publish(events_publisher, topology, event)

    async def all_delivered() -> None:
        assert len(receiver.requests) >= 4

    await wait_for(all_delivered, within=30)

    async def settled() -> None:
        for h in (hook, only_done):
            r = await api.get(f"/api/webhooks/{h['id']}/deliveries", headers=headers)
            assert {d["status"] for d in r.json()} == {"delivered"}, r.json()

    await wait_for(settled, within=15)
    r = await api.get(f"/api/webhooks/{hook['id']}/deliveries", headers=headers)
    deliveries = r.json()
    assert sorted(d["event"] for d in deliveries) == [
        "completed",
        "started",
        "wave_started",
    ]
    assert all(d["attempts"] == 1 and d["last_status_code"] == 200 for d in deliveries)
    assert len(receiver.requests) == 4
    by_url: dict[str, list[str]] = {}
    for req in receiver.requests:
        body = RolloutEvent.model_validate_json(req.body)
        assert req.headers["x-xdp47-event-id"] == str(body.message_id)
        assert req.headers["x-xdp47-event"] == body.event
        by_url.setdefault(body.event, []).append(req.headers["x-xdp47-signature"])
        ok_main = verify(hook["secret"], req.headers, req.body, now=time.time())
        ok_done = verify(only_done["secret"], req.headers, req.body, now=time.time())
        assert ok_main or ok_done
        # A replay outside the tolerance is rejected by the same recipe.
        assert not verify(hook["secret"], req.headers, req.body, now=time.time() + 3600)
    assert sorted(by_url) == ["completed", "started", "wave_started"]
    assert len(by_url["completed"]) == 2  # one per subscription
    assert sorted(receiver.event_ids()) == sorted(
        [str(e.message_id) for e in events] + [str(events[2].message_id)]
    )


async def test_a_failing_receiver_gets_growing_retries_then_parks(
    worker: WebhookWorker,
    api: httpx.AsyncClient,
    headers: dict[str, str],
    tenant: str,
    receiver: Receiver,
    events_publisher: AmqpPublisher,
    topology: Topology,
) -> None:
    receiver.status = 500
    hook = await subscribe(api, headers, receiver.url)
    event = RolloutEvent(tenant=tenant, rollout_id=uuid.uuid4(), event="failed")
    await publish(events_publisher, topology, event)
    path = f"/api/webhooks/{hook['id']}/deliveries"

    async def parked() -> dict[str, Any]:
        r = await api.get(path, params={"status": "parked"}, headers=headers)
        items = r.json()
        assert len(items) == 1
        found: dict[str, Any] = items[0]
        return found

    delivery = await wait_for(parked, within=40)
    assert delivery["attempts"] == worker.settings.max_attempts == 4
    assert delivery["last_status_code"] == 500
    assert delivery["last_error"] == "HTTP 500"
    times = [r.at for r in receiver.requests]
    assert len(times) == 4
    gaps = [b - a for a, b in itertools.pairwise(times)]
    for gap, delay_ms in zip(gaps, worker.settings.delays_ms, strict=True):
        assert gap >= delay_ms / 1000 * 0.9, gaps  # the delay queue's TTL
    assert gaps[0] < gaps[2], gaps  # growing

    # Redeliver by hand, to a receiver that now answers.
    receiver.status = 204
    again = await api.post(f"{path}/{delivery['id']}:redeliver", headers=headers)
    assert again.status_code == 202, again.text
    assert again.json()["status"] == "pending"
    busy = await api.post(f"{path}/{delivery['id']}:redeliver", headers=headers)
    assert busy.status_code in (202, 409)

    async def delivered() -> None:
        r = await api.get(path, headers=headers)
        (item,) = r.json()
        assert item["status"] == "delivered", item
        assert item["redeliveries"] >= 1
        assert item["last_status_code"] == 204

    await wait_for(delivered, within=20)
    assert len(receiver.unique()) == 1


async def test_a_private_address_is_refused_at_delivery_unless_allowed(
    worker: WebhookWorker,
    pool: asyncpg.Pool[Any],
    tenant: str,
    receiver: Receiver,
    events_publisher: AmqpPublisher,
    topology: Topology,
) -> None:
    """A subscription made while private addresses were allowed, delivered by a
    worker that refuses them: every attempt is refused, none is sent."""
    assert worker._attempts is not None
    worker._attempts._allow_private = False
    hook_id = uuid.uuid4()
    await pool.execute(
        "INSERT INTO webhooks (id, tenant, url, secret) VALUES ($1, $2, $3, 's')",
        hook_id,
        tenant,
        receiver.url,
    )
    event = RolloutEvent(tenant=tenant, rollout_id=uuid.uuid4(), event="completed")
    await publish(events_publisher, topology, event)

    async def refused() -> Any:
        row = await pool.fetchrow(
            "SELECT status, last_error, attempts FROM webhook_deliveries "
            "WHERE webhook_id = $1",
            hook_id,
        )
        assert row is not None
        assert row["status"] == "parked", row
        return row

    row = await wait_for(refused, within=40)
    assert "127.0.0.1 resolves to 127.0.0.1, a loopback address" in row["last_error"]
    assert row["last_error"].startswith("refused: ")
    assert receiver.requests == []
