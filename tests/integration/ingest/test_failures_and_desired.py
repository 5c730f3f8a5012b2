"""Broker outage → 503 with Retry-After; /desired with a strong ETag and 304."""

from __future__ import annotations

import asyncio
import hashlib
import uuid

import asyncpg
import pytest

from tests.integration.ingest.conftest import (
    PATHS,
    make_device,
    running,
    running_rollout,
    settings_for,
    through,
)
from tests.support.tcp_proxy import TcpProxy
from xdp47_ingest import create_app

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("over", PATHS)
async def test_broker_unreachable_gives_503_with_retry_after(
    db_url: str, amqp_url: str, topology, pool, proxy: TcpProxy, over: str
) -> None:
    """With the broker cut off, a heartbeat is refused (never a false 202)."""
    device = await make_device(pool)
    app = create_app(settings_for(db_url, through(amqp_url, proxy), topology))
    async with running(app, over=over) as client:
        url = f"/api/devices/{device.id}/heartbeat"
        ok = await client.post(url, json={"seq": 1}, headers=device.auth)
        assert ok.status_code == 202
        await proxy.cut()
        r = await client.post(url, json={"seq": 2}, headers=device.auth)
        assert r.status_code == 503
        assert r.headers["retry-after"] == "3"
        assert "retry" in r.json()["detail"]
        ready = await client.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["checks"]["rabbitmq"] != "ok"
        assert (await client.get("/livez")).status_code == 200


async def test_desired_state_etag_and_304(client, pool) -> None:
    device = await make_device(pool)
    url = f"/api/devices/{device.id}/desired"
    first = await client.get(url, headers=device.auth)
    assert first.status_code == 200
    assert first.json()["action"] == "none"
    etag = first.headers["etag"]
    assert etag.startswith('"')
    assert not etag.startswith("W/")

    same = await client.get(url, headers={**device.auth, "If-None-Match": etag})
    assert same.status_code == 304
    assert same.headers["etag"] == etag
    assert same.content == b""

    artifact = uuid.uuid4()
    sha = hashlib.sha256(b"release").hexdigest()
    await pool.execute(
        "INSERT INTO artifacts (id, tenant, uri, sha256, size, version, signature)"
        " VALUES ($1, $2, 'https://cdn.example/r.tar', $3, 7, '2.0.0', 'c2ln')",
        artifact,
        device.tenant,
        sha,
    )
    # A rollout of the device's tenant starts wave 1 (the scheduler's write):
    # the commit notifies ingest, which must stop answering from memory.
    rollout = await running_rollout(pool, device, artifact)
    # The notification reaches ingest a moment after the commit.
    for _ in range(200):
        changed = await client.get(url, headers={**device.auth, "If-None-Match": etag})
        if changed.status_code != 304:
            break
        await asyncio.sleep(0.01)
    assert changed.status_code == 200
    assert changed.headers["etag"] != etag
    body = changed.json()
    assert body["action"] == "update"
    assert (body["artifact_id"], body["rollout_id"]) == (str(artifact), str(rollout))
    assert (body["sha256"], body["size"], body["version"]) == (sha, 7, "2.0.0")
    assert body["signature"] == "c2ln"

    # The heartbeat answer carries the same desired state.
    hb = await client.post(
        f"/api/devices/{device.id}/heartbeat", json={"seq": 1}, headers=device.auth
    )
    assert hb.status_code == 202
    assert hb.json()["artifact_id"] == str(artifact)


async def test_metrics_are_served(client) -> None:
    r = await client.get("/metrics")
    assert r.status_code == 200
    assert "xdp47_ingest_http_requests_total" in r.text


@pytest.mark.parametrize(
    "error",
    [
        asyncpg.InternalClientError("cannot switch to state 12"),
        asyncpg.ConnectionDoesNotExistError("connection was closed"),
        ConnectionResetError("reset by peer"),
        TimeoutError(),
        asyncpg.CannotConnectNowError("the database system is starting up"),
    ],
    ids=lambda e: type(e).__name__,
)
async def test_a_database_failure_is_503_never_500(
    db_url: str, amqp_url: str, topology, pool, error: Exception
) -> None:
    """What PostgreSQL restarts raise in the read (InternalClientError came from
    a pooled connection reset under a restart, in the fault suite)."""
    device = await make_device(pool)
    app = create_app(settings_for(db_url, amqp_url, topology))
    async with running(app) as client:

        async def fail(key: bytes) -> None:
            raise error

        app.state.deps.cache.lookup_hash = fail
        for path, method in (("heartbeat", "POST"), ("desired", "GET")):
            r = await client.request(
                method,
                f"/api/devices/{device.id}/{path}",
                json={"seq": 1} if method == "POST" else None,
                headers=device.auth,
            )
            assert r.status_code == 503, (path, r.text)
            assert r.headers["retry-after"] == "3"
            assert "unavailable" in r.json()["detail"]
