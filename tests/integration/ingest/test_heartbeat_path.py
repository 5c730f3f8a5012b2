"""Heartbeats through ingest, RabbitMQ and the heartbeat consumer into PostgreSQL."""

from __future__ import annotations

from typing import Any, cast

import asyncpg
import httpx
import pytest
from tenacity import AsyncRetrying, stop_after_delay, wait_fixed

from tests.integration.ingest.conftest import make_device
from xdp47_common.bus import WorkQueues
from xdp47_common.tokens import SecretKind, new_secret
from xdp47_scheduler.consumer import HeartbeatConsumer
from xdp47_scheduler.heartbeats import HeartbeatWriteResult

pytestmark = pytest.mark.integration


async def _device_row(pool: asyncpg.Pool[Any], tenant: str, device_id: str):
    return await pool.fetchrow(
        "SELECT * FROM devices WHERE tenant = $1 AND id = $2", tenant, device_id
    )


async def _until_seq(pool, device, seq: int):
    async for attempt in AsyncRetrying(
        stop=stop_after_delay(15), wait=wait_fixed(0.05), reraise=True
    ):
        with attempt:
            row = await _device_row(pool, device.tenant, device.id)
            assert row["last_seq"] == seq
    return row


async def test_heartbeat_is_accepted_and_lands_in_devices(
    client: httpx.AsyncClient, pool, consumer: HeartbeatConsumer
) -> None:
    device = await make_device(pool)
    body = {
        "seq": 1,
        "current_version": "1.2.3",
        "health": "ok",
        "metrics": {"cpu": 0.25, "errors": 0},
        "last_apply": {
            "artifact_id": "00000000-0000-0000-0000-000000000001",
            "result": "failed",
            "reason": "sha256 mismatch",
        },
    }
    r = await client.post(
        f"/api/devices/{device.id}/heartbeat", json=body, headers=device.auth
    )
    assert r.status_code == 202, r.text
    assert r.json()["action"] == "none"
    row = await _until_seq(pool, device, 1)
    assert row["status"] == "online"
    assert row["health"] == "ok"
    assert row["current_version"] == "1.2.3"
    assert row["last_metrics"] == {"cpu": 0.25, "errors": 0}
    assert row["last_apply"]["result"] == "failed"
    assert row["last_seen"] is not None


async def test_older_seq_never_overwrites_newer(
    client: httpx.AsyncClient, pool, consumer: HeartbeatConsumer
) -> None:
    device, marker = await make_device(pool), await make_device(pool)
    for seq, version in ((5, "new"), (3, "old")):
        r = await client.post(
            f"/api/devices/{device.id}/heartbeat",
            json={"seq": seq, "current_version": version},
            headers=device.auth,
        )
        assert r.status_code == 202
    # One queue, one consumer, in order: once the marker is written, seq 3 was too.
    r = await client.post(
        f"/api/devices/{marker.id}/heartbeat", json={"seq": 1}, headers=marker.auth
    )
    assert r.status_code == 202
    await _until_seq(pool, marker, 1)
    row = await _device_row(pool, device.tenant, device.id)
    assert (row["last_seq"], row["current_version"]) == (5, "new")


async def test_same_heartbeat_twice_has_one_effect(
    client: httpx.AsyncClient,
    pool,
    consumer: HeartbeatConsumer,
    written: list[HeartbeatWriteResult],
) -> None:
    """A retried POST (same seq) is published twice and changes the device once."""
    device = await make_device(pool)
    for _ in range(2):
        r = await client.post(
            f"/api/devices/{device.id}/heartbeat",
            json={"seq": 1, "health": "degraded"},
            headers=device.auth,
        )
        assert r.status_code == 202
    marker = await make_device(pool)
    await client.post(
        f"/api/devices/{marker.id}/heartbeat", json={"seq": 1}, headers=marker.auth
    )
    await _until_seq(pool, marker, 1)
    changes = [c for w in written for c in w.changed if c.device_id == device.id]
    assert len(changes) == 1
    row = await _device_row(pool, device.tenant, device.id)
    assert (row["last_seq"], row["status"]) == (1, "online")
    health = await pool.fetchval("SELECT health FROM devices WHERE id = $1", device.id)
    assert health == "degraded"


async def test_a_device_cannot_post_for_another(
    client: httpx.AsyncClient, pool
) -> None:
    mine, theirs = await make_device(pool), await make_device(pool)
    r = await client.post(
        f"/api/devices/{theirs.id}/heartbeat", json={"seq": 1}, headers=mine.auth
    )
    assert r.status_code == 403
    assert theirs.id in r.json()["detail"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"seq": 1, "bogus": 1}, "body.bogus"),
        ({"health": "ok"}, "body.seq"),
        ({"seq": -1}, "body.seq"),
        ({"seq": 1, "health": "great"}, "body.health"),
    ],
)
async def test_bad_body_is_422_naming_the_field(
    client: httpx.AsyncClient, pool, body: dict[str, Any], field: str
) -> None:
    device = await make_device(pool)
    r = await client.post(
        f"/api/devices/{device.id}/heartbeat", json=body, headers=device.auth
    )
    assert r.status_code == 422
    assert field in r.json()["detail"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"seq": 1, "current_version": "1\u0000"}, "body.current_version"),
        ({"seq": 1, "metrics": {"k": "v\u0000"}}, "body.metrics.k"),
        ({"seq": True}, "body.seq"),
        (
            {
                "seq": 1,
                "last_apply": {
                    "artifact_id": "0e0e0e0e-0e0e-4e0e-8e0e-0e0e0e0e0e0e",
                    "result": "ok",
                    "at": 0,
                },
            },
            "body.last_apply.at",
        ),
    ],
)
async def test_what_the_database_cannot_hold_is_422_naming_the_field(
    client: httpx.AsyncClient, pool, body: dict[str, Any], field: str
) -> None:
    """NUL in text, ``true`` as a seq, a number as a date: refused by the schema
    (422 naming the field), never accepted and failing later in the database."""
    device = await make_device(pool)
    r = await client.post(
        f"/api/devices/{device.id}/heartbeat", json=body, headers=device.auth
    )
    assert r.status_code == 422, r.text
    assert field in r.json()["detail"]


@pytest.mark.parametrize(
    ("leaf", "served"), [("heartbeat", "POST"), ("desired", "GET")]
)
async def test_options_and_other_methods_name_the_method(
    client: httpx.AsyncClient, pool, leaf: str, served: str
) -> None:
    device = await make_device(pool)
    path = f"/api/devices/{device.id}/{leaf}"
    r = await client.options(path, headers=device.auth)
    assert (r.status_code, r.headers["allow"]) == (204, f"OPTIONS, {served}")
    r = await client.put(path, headers=device.auth)
    assert (r.status_code, r.headers["allow"]) == (405, f"OPTIONS, {served}")


async def test_non_json_body_is_422(client: httpx.AsyncClient, pool) -> None:
    device = await make_device(pool)
    r = await client.post(
        f"/api/devices/{device.id}/heartbeat", content=b"{seq", headers=device.auth
    )
    assert r.status_code == 422


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "Basic Zm9vOmJhcg==",
        "Bearer garbage",
        "Bearer " + new_secret(SecretKind.API_TOKEN),  # right format, wrong kind
        "Bearer " + new_secret(SecretKind.DEVICE_CREDENTIAL),  # well-formed, unknown
    ],
)
async def test_missing_garbage_or_unknown_credential_is_401(
    client: httpx.AsyncClient, pool, authorization: str | None
) -> None:
    device = await make_device(pool)
    headers = {"Authorization": authorization} if authorization else {}
    for path in ("heartbeat", "desired"):
        method = client.post if path == "heartbeat" else client.get
        kwargs: dict[str, Any] = {"headers": headers}
        if path == "heartbeat":
            kwargs["json"] = {"seq": 1}
        r = await method(f"/api/devices/{device.id}/{path}", **kwargs)
        assert r.status_code == 401
        assert r.headers["www-authenticate"].startswith("Bearer")


async def test_after_write_runs_in_the_same_transaction(pool, topology) -> None:
    """If the engine's callback fails, the device update is rolled back too."""
    from xdp47_common.clock import utcnow
    from xdp47_common.messages import Heartbeat, HeartbeatBatch

    device = await make_device(pool)

    async def boom(conn, result) -> None:
        assert [c.device_id for c in result.changed] == [device.id]
        raise RuntimeError("engine failed")

    hc = HeartbeatConsumer(
        pool,
        queues=cast(WorkQueues, _NoChannel()),
        topology=topology,
        after_write=boom,
    )
    message = HeartbeatBatch(
        tenant=device.tenant,
        heartbeats=[Heartbeat(seq=4, device_id=device.id, received_at=utcnow())],
    )
    with pytest.raises(RuntimeError, match="engine failed"):
        await hc.handle([message])
    row = await _device_row(pool, device.tenant, device.id)
    assert row["last_seq"] == -1


class _NoChannel:
    """The consumer is not started in this test; handle() needs no channel."""
