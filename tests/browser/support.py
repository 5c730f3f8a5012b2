"""What the browser tests do behind the browser's back: write rows as the
scheduler would, publish its events, mint tokens. Each helper runs its coroutine
on a fresh event loop in a worker thread, because Playwright's sync API owns the
test's thread."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import aio_pika
import asyncpg

from tests.browser.conftest import LiveServer
from xdp47_api.repositories import PgTenantRepository, PgTokenRepository
from xdp47_common.adapters.amqp import connect, to_message
from xdp47_common.adapters.pg import create_pool
from xdp47_common.messages import RolloutEvent
from xdp47_common.models import Scope
from xdp47_common.tokens import SecretKind, display_prefix, hash_secret, new_secret
from xdp47_common.topology import Topology

T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result(timeout=60)


async def _with_pool(
    server: LiveServer, sql: list[tuple[str, tuple[Any, ...]]]
) -> None:
    pool = await create_pool(server.db_url, min_size=1, max_size=2)
    try:
        async with pool.acquire() as conn, conn.transaction():
            for statement, args in sql:
                await conn.execute(statement, *args)
    finally:
        await pool.close()


def execute(server: LiveServer, *sql: tuple[str, tuple[Any, ...]]) -> None:
    run(_with_pool(server, list(sql)))


def add_devices(
    server: LiveServer, tenant: str, ids: list[str], labels: dict[str, str]
) -> None:
    execute(
        server,
        *[
            (
                "INSERT INTO devices (tenant, id, labels, status, current_version, "
                "last_seen) VALUES ($1, $2, $3, 'online', '1.0.0', now())",
                (tenant, device_id, labels),
            )
            for device_id in ids
        ],
    )


def rollout_id_by_name(server: LiveServer, name: str) -> uuid.UUID:
    async def go() -> uuid.UUID:
        conn = await asyncpg.connect(server.db_url)
        try:
            found = await conn.fetchval(
                "SELECT id FROM rollouts WHERE tenant = $1 AND name = $2",
                server.tenant,
                name,
            )
        finally:
            await conn.close()
        assert isinstance(found, uuid.UUID)
        return found

    return run(go())


def publish_event(server: LiveServer, rollout_id: uuid.UUID, event: str) -> None:
    """What the scheduler publishes after each decision."""

    async def go() -> None:
        connection = await connect(server.amqp_url)
        async with connection:
            channel = await connection.channel(publisher_confirms=True)
            exchange = await channel.declare_exchange(
                Topology(server.namespace).events,
                aio_pika.ExchangeType.TOPIC,
                durable=True,
            )
            message = RolloutEvent(
                tenant=server.tenant, rollout_id=rollout_id, event=event
            )
            await exchange.publish(
                to_message(message),
                routing_key=Topology.rollout_event_key(server.tenant, event),
            )

    run(go())


def make_tenant_with_artifact(server: LiveServer, tenant: str, version: str) -> None:
    execute(
        server,
        ("INSERT INTO tenants (id, name) VALUES ($1, $1)", (tenant,)),
        (
            "INSERT INTO artifacts (id, tenant, uri, sha256, version) "
            "VALUES ($1, $2, 'https://x.example/b', $3, $4)",
            (uuid.uuid4(), tenant, "0" * 64, version),
        ),
    )


def mint(server: LiveServer, scopes: set[Scope]) -> str:
    async def go() -> str:
        pool = await create_pool(server.db_url, min_size=1, max_size=2)
        try:
            if await PgTenantRepository(pool).get(server.tenant) is None:
                raise AssertionError("the dev tenant does not exist")
            secret = new_secret(SecretKind.API_TOKEN)
            await PgTokenRepository(pool).create(
                tenant=server.tenant,
                name="browser-read-only",
                prefix=display_prefix(secret),
                token_hash=hash_secret(secret),
                scopes=sorted(scopes),
                created_by=None,
                expires_at=None,
            )
            return secret
        finally:
            await pool.close()

    return run(go())
