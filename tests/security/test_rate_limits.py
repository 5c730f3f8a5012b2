"""Per-credential rate limits: over the limit → 429 with Retry-After, another
tenant's token (or another device) unaffected, the limit resets; and the limiter's
cost next to an ingest request's."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from tenacity import AsyncRetrying, retry_if_result, stop_after_attempt, wait_fixed

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
from xdp47_common.web import RateLimits

pytestmark = [pytest.mark.integration, pytest.mark.security]

LIMIT = 5
PERIOD = 4  # seconds; the memory:// windows are aligned to multiples of it
WINDOW = f"{LIMIT}/{PERIOD} seconds"


async def _window_with_room(need: float = 3.0) -> None:
    """Wait until the current fixed window has ``need`` seconds left, so a burst
    of requests falls in one window even on a loaded machine (a burst split by a
    window boundary would see two budgets)."""
    left = PERIOD - time.time() % PERIOD
    if left < need:
        await asyncio.sleep(left + 0.01)


@pytest.fixture(scope="module")
async def pair(security_pool: Any) -> list[TenantData]:
    return [
        await make_tenant_data(security_pool, "rate-a"),
        await make_tenant_data(security_pool, "rate-b"),
    ]


@pytest.fixture(scope="module")
async def namespace(amqp_namespace: str, amqp_url: str) -> AsyncIterator[str]:
    ns = f"{amqp_namespace}_rate"
    yield ns
    await drop_namespace(amqp_url, ns)


@pytest.fixture(scope="module")
async def api(
    security_db_url: str,
    amqp_url: str,
    namespace: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[httpx.AsyncClient]:
    settings = api_settings(
        security_db_url,
        amqp_url,
        namespace,
        tmp_path_factory.mktemp("b"),
        rate_limit=WINDOW,
    )
    async with serving(api_app(settings), "http://api") as client:
        yield client


@pytest.fixture(scope="module")
async def ingest(
    security_db_url: str, amqp_url: str, namespace: str
) -> AsyncIterator[httpx.AsyncClient]:
    settings = ingest_settings(
        security_db_url, amqp_url, namespace, device_rate_limit=WINDOW
    )
    async with serving(ingest_app(settings), "http://ingest") as client:
        yield client


def _beat(seq: int) -> dict[str, Any]:
    return {"seq": seq, "health": "ok"}


async def _until_allowed(call: Callable[[], Any]) -> httpx.Response:
    """Poll (bounded) until the window has reset and the call is let through."""
    async for attempt in AsyncRetrying(
        retry=retry_if_result(lambda r: r.status_code == 429),
        wait=wait_fixed(0.25),
        stop=stop_after_attempt(40),
    ):
        with attempt:
            response: httpx.Response = await call()
        if not attempt.retry_state.outcome or not attempt.retry_state.outcome.failed:
            attempt.retry_state.set_result(response)
    return response


async def test_token_over_limit_gets_429_other_tenant_unaffected(
    api: httpx.AsyncClient, pair: list[TenantData], figure: Callable[[str], None]
) -> None:
    a, b = pair
    await _window_with_room()
    statuses = [
        (await api.get("/api/devices", headers=a.auth)).status_code
        for _ in range(LIMIT)
    ]
    over = await api.get("/api/devices", headers=a.auth)
    other = await api.get("/api/devices", headers=b.auth)
    assert statuses == [200] * LIMIT
    assert over.status_code == 429
    retry_after = int(over.headers["retry-after"])
    assert 1 <= retry_after <= PERIOD
    assert "rate limit" in over.json()["detail"]
    assert "x-request-id" in over.headers
    assert other.status_code == 200  # tenant b's token has its own counter
    # A body is not read for a limited request: even an invalid one gets 429.
    assert (
        await api.post("/api/tenants", headers=a.auth, content=b"{")
    ).status_code == 429
    again = await _until_allowed(lambda: api.get("/api/devices", headers=a.auth))
    assert again.status_code == 200
    figure(
        f"RATE LIMIT api: limit={WINDOW} over_limit=429 retry_after={retry_after}s "
        f"other_tenant={other.status_code} after_reset={again.status_code}"
    )


async def test_device_over_limit_gets_429_other_device_unaffected(
    ingest: httpx.AsyncClient, pair: list[TenantData], figure: Callable[[str], None]
) -> None:
    a, b = pair

    def beat(t: TenantData, seq: int) -> Any:
        return ingest.post(
            f"/api/devices/{t.device_id}/heartbeat",
            headers=t.device_auth,
            json=_beat(seq),
        )

    await _window_with_room()
    statuses = [(await beat(a, n)).status_code for n in range(1, LIMIT + 1)]
    over = await beat(a, 100)
    other = await beat(b, 1)
    assert statuses == [202] * LIMIT
    assert over.status_code == 429
    assert int(over.headers["retry-after"]) >= 1
    assert other.status_code == 202
    seq = iter(range(200, 400))
    again = await _until_allowed(lambda: beat(a, next(seq)))
    assert again.status_code == 202
    figure(
        f"RATE LIMIT ingest: limit={WINDOW} over_limit=429 "
        f"other_device={other.status_code} after_reset={again.status_code}"
    )


async def test_limiter_cost_next_to_an_ingest_request(
    security_db_url: str,
    amqp_url: str,
    namespace: str,
    pair: list[TenantData],
    figure: Callable[[str], None],
) -> None:
    """Measured, not asserted on time: the figure goes to docs/reliability.md.
    The assertions check that the measured limiter really counted."""
    device = pair[0]
    limits = RateLimits(token_limit="off", device_limit="1000000/second")
    n = 2000
    start = time.perf_counter()
    for _ in range(n):
        assert await limits.hit(device.device_credential) is None
    limiter_us = (time.perf_counter() - start) / n * 1e6

    settings = ingest_settings(
        security_db_url, amqp_url, namespace, device_rate_limit="off"
    )
    requests = 300
    async with serving(ingest_app(settings), "http://ingest") as client:
        path = f"/api/devices/{device.device_id}/heartbeat"
        for seq in range(1000, 1020):  # warm up pool and channel
            await client.post(path, headers=device.device_auth, json=_beat(seq))
        start = time.perf_counter()
        for seq in range(2000, 2000 + requests):
            r = await client.post(path, headers=device.device_auth, json=_beat(seq))
            assert r.status_code == 202
        request_us = (time.perf_counter() - start) / requests * 1e6
    # The limiter saw every hit: one more than the limit's amount would refuse.
    tight = RateLimits(token_limit="off", device_limit=f"{n}/hour")
    for _ in range(n):
        assert await tight.hit(device.device_credential) is None
    assert await tight.hit(device.device_credential) is not None
    figure(
        f"RATE LIMIT cost: limiter={limiter_us:.1f}us/request "
        f"ingest_heartbeat={request_us:.0f}us/request "
        f"overhead={limiter_us / request_us * 100:.1f}%"
    )
