"""Fixtures for the heartbeat path: the ingest app, the heartbeat consumer, devices."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

import asyncpg
import httpx
import pytest
import uvicorn
from aio_pika.abc import AbstractRobustConnection
from fastapi import FastAPI

from tests.support.amqp import declared
from tests.support.processes import free_port
from tests.support.tcp_proxy import TcpProxy
from tests.support.waiting import until
from xdp47_common.adapters.amqp import connect
from xdp47_common.adapters.amqp_bus import AmqpBus
from xdp47_common.rollout import EffectivePolicy
from xdp47_common.tokens import SecretKind, hash_secret, new_secret
from xdp47_common.topology import Topology
from xdp47_ingest import IngestSettings, create_app
from xdp47_ingest.device_lane import device_protocol
from xdp47_scheduler.consumer import HeartbeatConsumer
from xdp47_scheduler.heartbeats import HeartbeatWriteResult


@dataclass(frozen=True)
class Device:
    tenant: str
    id: str
    credential: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.credential}"}


async def make_device(pool: asyncpg.Pool[Any], tenant: str | None = None) -> Device:
    tenant = tenant or f"t-{uuid.uuid4().hex[:8]}"
    credential = new_secret(SecretKind.DEVICE_CREDENTIAL)
    device_id = f"dev-{uuid.uuid4().hex[:10]}"
    await pool.execute(
        "INSERT INTO tenants (id, name) VALUES ($1, $1) ON CONFLICT DO NOTHING", tenant
    )
    await pool.execute(
        "INSERT INTO devices (tenant, id, credential_hash) VALUES ($1, $2, $3)",
        tenant,
        device_id,
        hash_secret(credential),
    )
    return Device(tenant, device_id, credential)


async def add_artifact(pool: asyncpg.Pool[Any], tenant: str) -> uuid.UUID:
    """An artifact of ``tenant`` (version 3.0.0)."""
    artifact = uuid.uuid4()
    await pool.execute(
        "INSERT INTO artifacts (id, tenant, uri, sha256, size, version)"
        " VALUES ($1, $2, 'https://cdn.example/a.tar', $3, 1, '3.0.0')",
        artifact,
        tenant,
        hashlib.sha256(artifact.bytes).hexdigest(),
    )
    return artifact


# Every device of a rollout is told, online or not.
TELL_OFFLINE = EffectivePolicy(
    require_ok=True,
    skip_offline=False,
    grace_seconds=0,
    min_success_ratio=1.0,
    max_failures_per_wave=0,
    abort_on_zero_eligible=True,
    wave_deadline_seconds=600,
)


async def running_rollout(
    pool: asyncpg.Pool[Any], device: Device, artifact: uuid.UUID
) -> uuid.UUID:
    """A one-wave rollout of ``artifact`` with ``device`` in it, started as the
    scheduler starts one (its commit notifies ingest), under a policy that tells
    devices whatever their status (the device has not reported: not online)."""
    rollout = uuid.uuid4()
    await pool.execute(
        "INSERT INTO rollouts (id, tenant, artifact_id, waves, effective_policy)"
        " VALUES ($1, $2, $3, 1, $4::text::jsonb)",
        rollout,
        device.tenant,
        artifact,
        TELL_OFFLINE.model_dump_json(),
    )
    await pool.execute(
        "INSERT INTO rollout_targets (rollout_id, tenant, device_id, wave)"
        " VALUES ($1, $2, $3, 1)",
        rollout,
        device.tenant,
        device.id,
    )
    await pool.execute(
        "UPDATE rollouts SET status = 'running', current_wave = 1, attempt = 1"
        " WHERE id = $1",
        rollout,
    )
    return rollout


@pytest.fixture(scope="module")
async def connection(amqp_url: str) -> AsyncIterator[AbstractRobustConnection]:
    conn = await connect(amqp_url)
    yield conn
    await conn.close()


@pytest.fixture(scope="module")
async def topology(
    connection: AbstractRobustConnection, amqp_namespace: str
) -> AsyncIterator[Topology]:
    async with declared(connection, amqp_namespace) as t:
        yield t


def settings_for(db_url: str, amqp_url: str, topology: Topology) -> IngestSettings:
    return IngestSettings(
        db_url=db_url,
        amqp_url=amqp_url,
        amqp_namespace=topology.namespace,
        publish_timeout=1.0,
        ingest_retry_after=3,
    )


# How a test talks to ingest: through ASGI in process ("asgi"), or over TCP to
# uvicorn with the device lane answering the usual device request ("lane").
PATHS = ["asgi", "lane"]


@pytest.fixture(scope="module", params=PATHS)
async def client(
    request: pytest.FixtureRequest, db_url: str, amqp_url: str, topology: Topology
) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings_for(db_url, amqp_url, topology))
    async with running(app, over=request.param) as c:
        yield c


@contextlib.asynccontextmanager
async def running(
    app: FastAPI, *, over: str = "asgi"
) -> AsyncIterator[httpx.AsyncClient]:
    """Run the app's lifespan and talk to it: in process through ASGI, or
    (``over="lane"``) over TCP to uvicorn serving it as ``xdp47-ingest`` does."""
    async with app.router.lifespan_context(app):
        if over == "asgi":
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(
                transport=transport, base_url="http://ingest"
            ) as c:
                yield c
            return
        async with (
            served(app, lifespan="off") as server,
            httpx.AsyncClient(base_url=url_of(server), timeout=30) as c,
        ):
            yield c


@contextlib.asynccontextmanager
async def served(
    app: FastAPI, *, lifespan: Literal["on", "off"]
) -> AsyncIterator[uvicorn.Server]:
    """uvicorn serving ``app`` with the app's device lane on a free port of this
    host, its lifespan run by uvicorn (``"on"``) or by the caller (``"off"``);
    stopped (``should_exit``) at the end."""
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=free_port(),
        http=device_protocol(app.state.device_lane),
        lifespan=lifespan,
        log_config=None,
        access_log=False,
        server_header=False,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        await until(lambda: server.started, what="uvicorn started")
        yield server
    finally:
        server.should_exit = True
        await task


def url_of(server: uvicorn.Server) -> str:
    return f"http://127.0.0.1:{server.config.port}"


@pytest.fixture
async def proxy(amqp_url: str) -> AsyncIterator[TcpProxy]:
    parts = urlsplit(amqp_url)
    p = TcpProxy(parts.hostname or "127.0.0.1", parts.port or 5672)
    await p.start()
    yield p
    await p.close()


def through(amqp_url: str, proxy: TcpProxy) -> str:
    parts = urlsplit(amqp_url)
    netloc = parts.netloc.rsplit("@", 1)
    creds = f"{netloc[0]}@" if len(netloc) == 2 else ""
    return parts._replace(netloc=f"{creds}127.0.0.1:{proxy.port}").geturl()


@pytest.fixture(scope="module")
def written() -> list[HeartbeatWriteResult]:
    """Every write result of the running consumer, in commit order."""
    return []


@pytest.fixture(scope="module")
async def consumer(
    pool: asyncpg.Pool[Any],
    connection: AbstractRobustConnection,
    topology: Topology,
    written: list[HeartbeatWriteResult],
) -> AsyncIterator[HeartbeatConsumer]:
    async def record(conn: Any, result: HeartbeatWriteResult) -> None:
        written.append(result)

    bus = AmqpBus("", topology, connection=connection)  # the topology is declared
    hc = HeartbeatConsumer(
        pool, bus, topology, batch_size=50, max_wait_ms=20, after_write=record
    )
    await hc.start()
    yield hc
    await hc.stop()
