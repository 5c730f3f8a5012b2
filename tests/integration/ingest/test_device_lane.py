"""The device lane (``xdp47_ingest.device_lane``): uvicorn answering the usual
heartbeat and poll in its protocol, everything unusual handed to the ASGI path
with the same answers, on real sockets (pipelined requests, bodies that fail
validation after they were read, limits, lost clients, a shutdown in flight)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from tests.integration.ingest.conftest import (
    Device,
    make_device,
    served,
    settings_for,
    url_of,
)
from tests.support.waiting import until
from tests.support.wire import Wire, connect
from xdp47_common.topology import Topology
from xdp47_ingest import create_app

pytestmark = pytest.mark.integration


def request(
    method: str,
    path: str,
    device: Device | None = None,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    version: str = "1.1",
) -> bytes:
    lines = [f"{method} {path} HTTP/{version}", "Host: ingest"]
    if device is not None:
        lines.append(f"Authorization: Bearer {device.credential}")
    if body is not None and "Transfer-Encoding" not in (headers or {}):
        lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + (body or b"")


def beat(device: Device, seq: int, **headers: str) -> bytes:
    body = json.dumps({"seq": seq, "health": "ok"}).encode()
    return request("POST", f"/api/devices/{device.id}/heartbeat", device, body, headers)


def poll(device: Device, **headers: str) -> bytes:
    return request("GET", f"/api/devices/{device.id}/desired", device, None, headers)


@dataclass
class Served:
    app: FastAPI
    server: uvicorn.Server
    url: str
    wires: list[Wire] = field(default_factory=list)

    async def wire(self) -> Wire:
        self.wires.append(await connect(self.server.config.port))
        return self.wires[-1]

    async def requests(self, route: str, status: int) -> float:
        """``xdp47_ingest_http_requests_total`` of ``route`` and ``status``."""
        async with httpx.AsyncClient(base_url=self.url) as http:
            text = (await http.get("/metrics")).text
        total = 0.0
        for line in text.splitlines():
            if (
                line.startswith("xdp47_ingest_http_requests_total{")
                and f'route="{route}"' in line
                and f'status="{status}"' in line
            ):
                total += float(line.rsplit(" ", 1)[1])
        return total


async def serve(app: FastAPI) -> AsyncIterator[Served]:
    async with served(app, lifespan="on") as server:
        lane = Served(app, server, url_of(server))
        try:
            yield lane
        finally:
            for wire in lane.wires:
                await wire.close()


async def _ingest(
    db_url: str, amqp_url: str, topology: Topology, **settings: Any
) -> AsyncIterator[Served]:
    base = settings_for(db_url, amqp_url, topology)
    async for lane in serve(create_app(base.model_copy(update=settings))):
        yield lane


@pytest.fixture
async def ingest(
    db_url: str, amqp_url: str, topology: Topology, consumer: Any
) -> AsyncIterator[Served]:
    """Ingest with a 4096-byte body limit."""
    async for lane in _ingest(db_url, amqp_url, topology, max_body_bytes=4096):
        yield lane


@pytest.fixture
async def limited(
    db_url: str, amqp_url: str, topology: Topology, consumer: Any
) -> AsyncIterator[Served]:
    """Ingest with devices limited to 5 requests a minute."""
    async for lane in _ingest(db_url, amqp_url, topology, device_rate_limit="5/minute"):
        yield lane


async def last_seq(pool: Any, device: Device) -> int | None:
    seq: int | None = await pool.fetchval(
        "SELECT last_seq FROM devices WHERE tenant = $1 AND id = $2",
        device.tenant,
        device.id,
    )
    return seq


async def warm(ingest: Served, device: Device) -> None:
    """One poll through the ASGI path (a cache miss) puts the device's identity
    in the cache: its next requests are the lane's."""
    wire = await ingest.wire()
    await wire.send(poll(device))
    assert (await wire.answer()).status == 200


async def test_the_lane_answers_as_the_asgi_path_does(ingest: Served, pool) -> None:
    device = await make_device(pool)
    await warm(ingest, device)
    before = await ingest.requests("/api/devices/{device_id}/heartbeat", 202)
    wire = await ingest.wire()
    await wire.send(beat(device, 1, **{"X-Request-ID": "req-lane-1"}))
    answer = await wire.answer()
    assert answer.status == 202, answer.body
    assert answer.headers["content-type"] == "application/json"
    assert answer.headers["x-request-id"] == "req-lane-1"
    assert "date" in answer.headers
    assert answer.json()["action"] == "none"
    assert answer.json()["device_id"] == device.id
    await until(lambda: _is(last_seq(pool, device), 1), what="heartbeat persisted")
    # Counted like any request, under the route's template.
    after = await ingest.requests("/api/devices/{device_id}/heartbeat", 202)
    assert after == before + 1
    # A poll: 200 with a strong ETag, then 304 by it; a fresh id when none
    # (or an unacceptable one) is sent.
    await wire.send(poll(device))
    first = await wire.answer()
    assert first.status == 200
    assert first.json()["device_id"] == device.id
    assert len(first.headers["x-request-id"]) == 32
    etag = first.headers["etag"]
    assert first.headers["cache-control"] == "no-cache"
    await wire.send(poll(device, **{"If-None-Match": etag, "X-Request-ID": "a b"}))
    same = await wire.answer()
    assert (same.status, same.body, same.headers["etag"]) == (304, b"", etag)
    assert same.headers["x-request-id"] != "a b"


async def _is(value: Any, expected: Any) -> bool:
    return bool(await value == expected)


async def test_pipelined_requests_are_answered_in_order(ingest: Served, pool) -> None:
    device, other = await make_device(pool), await make_device(pool)
    await warm(ingest, device)
    wire = await ingest.wire()
    # A lane heartbeat (answered at the confirm), a poll the ASGI path answers
    # (another device's credential: 403) and lane requests behind them.
    await wire.send(
        beat(device, 1),
        poll(other).replace(other.id.encode(), device.id.encode(), 1),
        beat(device, 2),
        poll(device),
    )
    statuses = [(await wire.answer()).status for _ in range(4)]
    assert statuses == [202, 403, 202, 200]
    await until(lambda: _is(last_seq(pool, device), 2), what="both persisted")


@pytest.mark.parametrize(
    ("name", "raw", "status", "detail"),
    [
        ("invalid body", b'{"seq": -1}', 422, "body.seq"),
        ("not JSON", b"{", 422, "body"),
        ("unknown field", b'{"seq": 1, "colour": "red"}', 422, "body.colour"),
    ],
)
async def test_a_body_that_fails_is_answered_by_the_asgi_path(
    ingest: Served, pool, name: str, raw: bytes, status: int, detail: str
) -> None:
    """The lane read the body; the ASGI path gets it replayed and answers."""
    device = await make_device(pool)
    await warm(ingest, device)
    wire = await ingest.wire()
    await wire.send(
        request("POST", f"/api/devices/{device.id}/heartbeat", device, raw),
        beat(device, 3),
    )
    refused = await wire.answer()
    assert refused.status == status, refused.body
    assert refused.json()["detail"].startswith(detail), refused.json()
    assert refused.headers["x-request-id"]
    assert (await wire.answer()).status == 202


async def test_unusual_requests_take_the_asgi_path(ingest: Served, pool) -> None:
    device, other = await make_device(pool), await make_device(pool)
    await warm(ingest, device)
    await warm(ingest, other)
    path = f"/api/devices/{device.id}/heartbeat"
    body = json.dumps({"seq": 5}).encode()
    cases = [
        # No credential, a malformed one, another device's.
        (request("POST", path, None, body), 401),
        (request("POST", path, None, body, {"Authorization": "Bearer x"}), 401),
        (request("POST", path, other, body), 403),
        # Over the body limit (4096 here, by its Content-Length).
        (request("POST", path, device, b"{" + b" " * 5000 + b"}"), 413),
        # A chunked body, a query, a method the route does not serve.
        (
            request(
                "POST",
                path,
                device,
                b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body),
                {"Transfer-Encoding": "chunked", "Content-Type": "application/json"},
            ),
            202,
        ),
        (request("POST", path + "?x=1", device, json.dumps({"seq": 6}).encode()), 202),
        (request("PUT", path, device, body), 405),
        # A poll with a body over the limit: not the lane's to buffer.
        (
            request("GET", f"/api/devices/{device.id}/desired", device, b" " * 5000),
            200,
        ),
    ]
    for raw, status in cases:
        wire = await ingest.wire()
        await wire.send(raw, poll(device))
        answer = await wire.answer()
        assert answer.status == status, (raw[:60], answer.body)
        assert answer.headers["x-request-id"]
        if status == 413:  # the rest of the body is not read: closed
            assert answer.headers["connection"] == "close"
            continue
        # The connection goes on, its next request the lane's.
        assert (await wire.answer()).status == 200
    wire = await ingest.wire()
    # An upgrade asked for on a device route: uvicorn's business (answered
    # without it here).
    wire = await ingest.wire()
    await wire.send(poll(device, Connection="Upgrade", Upgrade="h2c"))
    assert (await wire.answer()).status == 200
    # HTTP/1.0: answered, then the connection is closed.
    await wire.send(
        request("GET", f"/api/devices/{device.id}/desired", device, version="1.0")
    )
    assert (await wire.answer()).status == 200
    assert await wire.closed()


async def test_a_credential_over_its_rate_gets_429_counted_once(
    limited: Served, pool
) -> None:
    """Five per minute: the warming poll and four lane requests pass, the sixth
    is refused with Retry-After (by the ASGI path, as every 429)."""
    device = await make_device(pool)
    await warm(limited, device)
    wire = await limited.wire()
    await wire.send(beat(device, 1), poll(device), beat(device, 2), poll(device))
    assert [(await wire.answer()).status for _ in range(4)] == [202, 200, 202, 200]
    await wire.send(beat(device, 3))
    refused = await wire.answer()
    assert refused.status == 429, refused.body
    assert int(refused.headers["retry-after"]) >= 1


async def test_a_client_gone_before_the_confirm_costs_nothing_else(
    ingest: Served, pool
) -> None:
    """The heartbeat is still published (its batch was), nothing is written to
    the closed socket, and the server keeps serving."""
    device = await make_device(pool)
    await warm(ingest, device)
    wire = await ingest.wire()
    await wire.send(beat(device, 9))
    wire.writer.transport.abort()
    await until(lambda: _is(last_seq(pool, device), 9), what="heartbeat persisted")
    again = await ingest.wire()
    await again.send(beat(device, 10))
    assert (await again.answer()).status == 202


async def test_a_shutdown_answers_what_is_in_flight_then_closes(
    db_url: str, amqp_url: str, topology: Topology, pool, consumer: Any
) -> None:
    """A heartbeat waiting on its batch when the server is told to stop gets its
    202 with ``connection: close``, and the connection is closed."""
    settings = settings_for(db_url, amqp_url, topology).model_copy(
        update={"ingest_batch_wait_ms": 100.0}
    )
    app = create_app(settings)
    device = await make_device(pool)
    async for lane in serve(app):
        await warm(lane, device)
        wire = await lane.wire()
        await wire.send(beat(device, 4))
        await until(lambda: bool(app.state.deps.batcher._open), what="in a batch")
        lane.server.should_exit = True
        answer = await wire.answer()
        assert answer.status == 202
        assert answer.headers.get("connection") == "close"
        assert await wire.closed()
    await until(lambda: _is(last_seq(pool, device), 4), what="heartbeat persisted")
