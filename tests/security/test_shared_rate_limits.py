"""Rate limits across replicas and around probes: with a Redis storage every
replica counts against one limit per credential; the probes are never limited,
whatever credential a request presents; a Redis that is gone lets requests through."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis.asyncio as redis

from tests.security.support import (
    TenantData,
    api_app,
    api_settings,
    ingest_app,
    ingest_settings,
    make_tenant_data,
    serving,
)
from tests.support.amqp import drop_namespace
from xdp47_common.web.rate_limit import PROBE_PATHS

pytestmark = [pytest.mark.integration, pytest.mark.security]

LIMIT = 4
# A long window: every request of a test falls in one window whatever the load,
# so the count is exact (each test uses credentials of its own).
WINDOW = f"{LIMIT}/30 seconds"


@pytest.fixture(scope="module")
async def tenant(security_pool: Any) -> TenantData:
    return await make_tenant_data(security_pool, "shared-rate")


@pytest.fixture(scope="module")
async def namespace(amqp_namespace: str, amqp_url: str) -> AsyncIterator[str]:
    ns = f"{amqp_namespace}_srate"
    yield ns
    await drop_namespace(amqp_url, ns)


@pytest.fixture
async def fresh(security_pool: Any) -> TenantData:
    """A tenant (token and device) no other test has counted."""
    return await make_tenant_data(security_pool, "shared-rate")


async def _replicas(
    stack: AsyncExitStack, make: Callable[[], Any], n: int = 2
) -> list[httpx.AsyncClient]:
    return [
        await stack.enter_async_context(serving(make(), f"http://replica{i}"))
        for i in range(n)
    ]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_api_replicas_share_one_token_limit(
    security_db_url: str,
    amqp_url: str,
    namespace: str,
    redis_url: str,
    fresh: TenantData,
    tmp_path: Path,
    figure: Callable[[str], None],
) -> None:
    def make() -> Any:
        return api_app(
            api_settings(
                security_db_url,
                amqp_url,
                namespace,
                tmp_path,
                rate_limit=WINDOW,
                rate_limit_storage=redis_url,
            )
        )

    async with AsyncExitStack() as stack:
        a, b = await _replicas(stack, make)
        # Alternate between the replicas: alone each would allow LIMIT requests.
        statuses = [
            (await (a if n % 2 else b).get("/api/devices", headers=fresh.auth))
            for n in range(LIMIT)
        ]
        over_a = await a.get("/api/devices", headers=fresh.auth)
        over_b = await b.get("/api/devices", headers=fresh.auth)
    assert [r.status_code for r in statuses] == [200] * LIMIT
    assert over_a.status_code == 429, over_a.text
    assert over_b.status_code == 429, over_b.text
    assert int(over_b.headers["retry-after"]) >= 1
    figure(
        f"RATE LIMIT shared (redis) api: 2 replicas, limit={WINDOW}, "
        f"{LIMIT} allowed across both, then 429 on each"
    )


async def test_ingest_replicas_share_one_device_limit(
    security_db_url: str,
    amqp_url: str,
    namespace: str,
    redis_url: str,
    fresh: TenantData,
    figure: Callable[[str], None],
) -> None:
    def make() -> Any:
        return ingest_app(
            ingest_settings(
                security_db_url,
                amqp_url,
                namespace,
                device_rate_limit=WINDOW,
                rate_limit_storage=redis_url,
            )
        )

    path = f"/api/devices/{fresh.device_id}/heartbeat"
    async with AsyncExitStack() as stack:
        a, b = await _replicas(stack, make)
        statuses = [
            (
                await (a if n % 2 else b).post(
                    path, headers=fresh.device_auth, json={"seq": n + 1}
                )
            ).status_code
            for n in range(LIMIT)
        ]
        over = await a.post(path, headers=fresh.device_auth, json={"seq": 100})
    assert statuses == [202] * LIMIT
    assert over.status_code == 429, over.text
    figure(
        f"RATE LIMIT shared (redis) ingest: 2 replicas, limit={WINDOW}, "
        f"{LIMIT} heartbeats accepted across both, then 429"
    )


async def test_counters_live_in_redis_keyed_by_hash_not_secret(
    security_db_url: str,
    amqp_url: str,
    namespace: str,
    redis_url: str,
    fresh: TenantData,
    tmp_path: Path,
) -> None:
    settings = api_settings(
        security_db_url,
        amqp_url,
        namespace,
        tmp_path,
        rate_limit=WINDOW,
        rate_limit_storage=redis_url,
    )
    async with serving(api_app(settings), "http://api") as client:
        assert (await client.get("/api/devices", headers=fresh.auth)).status_code == 200
    secret = fresh.auth["Authorization"].removeprefix("Bearer ")
    client_r = redis.from_url(redis_url)
    try:
        keys = [k.decode() for k in await client_r.keys("LIMITS*")]
    finally:
        await client_r.aclose()
    assert keys, "no counter was written to Redis"
    assert not any(secret in k or secret[8:24] in k for k in keys)


@pytest.mark.parametrize("service", ["api", "ingest"])
async def test_probes_are_never_rate_limited(
    security_db_url: str,
    amqp_url: str,
    namespace: str,
    tenant: TenantData,
    tmp_path: Path,
    service: str,
) -> None:
    """A kubelet or scraper that sends a device's or a token's header gets its
    probe answered however often it asks; the credential's own limit holds."""
    if service == "api":
        app = api_app(
            api_settings(
                security_db_url,
                amqp_url,
                namespace,
                tmp_path,
                rate_limit=WINDOW,
                device_rate_limit=WINDOW,
            )
        )
    else:
        app = ingest_app(
            ingest_settings(
                security_db_url,
                amqp_url,
                namespace,
                rate_limit=WINDOW,
                device_rate_limit=WINDOW,
            )
        )
    async with serving(app, f"http://{service}") as client:
        for headers in (tenant.device_auth, tenant.auth):
            for path in sorted(PROBE_PATHS - {"/readyz"}):
                statuses = {
                    (await client.get(path, headers=headers)).status_code
                    for _ in range(LIMIT * 3)
                }
                assert statuses == {200}, (path, statuses)
            # readiness may be 200 or 503 by its checks, never 429
            ready = {
                (await client.get("/readyz", headers=headers)).status_code
                for _ in range(LIMIT * 3)
            }
            assert 429 not in ready
        # The probes did not spend the device's budget: its heartbeats pass.
        if service == "ingest":
            r = await client.post(
                f"/api/devices/{tenant.device_id}/heartbeat",
                headers=tenant.device_auth,
                json={"seq": 1},
            )
            assert r.status_code == 202, r.text


async def test_redis_gone_lets_requests_through(
    security_db_url: str,
    amqp_url: str,
    namespace: str,
    fresh: TenantData,
    tmp_path: Path,
) -> None:
    """Availability over the limit: a shared storage that does not answer is
    logged and the request served (docs/configuration.md)."""
    settings = api_settings(
        security_db_url,
        amqp_url,
        namespace,
        tmp_path,
        rate_limit="1/30 seconds",
        rate_limit_storage=f"redis://127.0.0.1:{_free_port()}/0",
    )
    async with serving(api_app(settings), "http://api") as client:
        statuses = [
            (await client.get("/api/devices", headers=fresh.auth)).status_code
            for _ in range(3)
        ]
    assert statuses == [200, 200, 200]
