"""Fixtures of the webhook tests: an API app and a webhook worker in process on a
namespace of their own, the session database, and a loopback receiver
(allowed by ``XDP47_WEBHOOK_ALLOW_PRIVATE``). Retry delays are short."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aio_pika
import asyncpg
import httpx
import pytest
from fastapi import FastAPI

from tests.integration.api.support import (
    auth,
    client_for,
    make_tenant,
    mint,
    running_app,
)
from tests.integration.webhooks.receiver import Receiver
from tests.support.amqp import child_topology, drop_namespace
from xdp47_common.adapters.amqp import AmqpPublisher, connect
from xdp47_common.models import Scope
from xdp47_common.settings import ControlSettings
from xdp47_common.topology import Topology
from xdp47_scheduler.webhooks.service import WebhookWorker
from xdp47_scheduler.webhooks.settings import WebhookSettings

DELAYS = "0.4,0.8,1.6"


@pytest.fixture
async def topology(amqp_url: str, amqp_namespace: str) -> AsyncIterator[Topology]:
    """The test's namespace. Every fixture that declares in it (the app, the
    worker, the publisher) depends on this one, so it is torn down after them
    all, failed test or not, and deletes what they declared: the API's topology,
    the worker's queues and its delay queue of each of ``DELAYS``."""
    t = child_topology(f"{amqp_namespace}_wh")
    yield t
    await drop_namespace(amqp_url, t.namespace, _delays_ms())


def _delays_ms() -> list[int]:
    return [round(float(d) * 1000) for d in DELAYS.split(",")]


@pytest.fixture
async def worker(
    db_url: str, amqp_url: str, topology: Topology
) -> AsyncIterator[WebhookWorker]:
    w = WebhookWorker(
        WebhookSettings(
            db_url=db_url,
            amqp_url=amqp_url,
            amqp_namespace=topology.namespace,
            webhook_allow_private=True,
            webhook_retry_delays=DELAYS,
            webhook_timeout=3,
            webhook_sweep=0.5,
            publish_timeout=5,
        )
    )
    assert w.settings.delays_ms == _delays_ms()
    await w.start()
    yield w
    await w.stop()


@pytest.fixture
async def app(
    db_url: str, amqp_url: str, topology: Topology, tmp_path: Any
) -> AsyncIterator[FastAPI]:
    settings = ControlSettings(
        db_url=db_url,
        amqp_url=amqp_url,
        amqp_namespace=topology.namespace,
        blob_dir=str(tmp_path),
        publish_timeout=5.0,
        webhook_allow_private=True,
    )
    async with running_app(settings) as application:
        yield application


@pytest.fixture
async def api(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(app) as c:
        yield c


@pytest.fixture
async def tenant(pool: asyncpg.Pool[Any]) -> str:
    return await make_tenant(pool, "wh")


@pytest.fixture
async def headers(pool: asyncpg.Pool[Any], tenant: str) -> dict[str, str]:
    token = await mint(pool, tenant, [Scope.WEBHOOKS_WRITE])
    return auth(token)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    r = Receiver()
    await r.start()
    yield r
    await r.close()


@pytest.fixture
async def events_publisher(
    amqp_url: str, topology: Topology
) -> AsyncIterator[AmqpPublisher]:
    connection: aio_pika.abc.AbstractRobustConnection = await connect(amqp_url)
    publisher = AmqpPublisher(connection, topology)
    await publisher.start()
    yield publisher
    await publisher.close()
    await connection.close()
