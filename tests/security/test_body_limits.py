"""Oversized bodies get 413 before they are read whole, on api and ingest, and on
the upload route with its own limit.

The request is driven at the ASGI level: ``receive`` hands out a chunked body of
up to 1 GiB one chunk at a time and counts what the server pulled. The proof is
that the answer is 413 after at most the limit plus one chunk was pulled, so the
client never had to send the rest; a ``Content-Length`` over the limit is refused
before a single byte is pulled.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, MutableMapping
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI

from tests.security.support import (
    MAX_BODY,
    MAX_UPLOAD,
    TenantData,
    api_app,
    api_settings,
    ingest_app,
    ingest_settings,
    make_tenant_data,
)
from tests.support.amqp import drop_namespace

pytestmark = [pytest.mark.integration, pytest.mark.security]

CHUNK = 64 << 10
HUGE = 1 << 30  # what the client would send if the server kept reading


@pytest.fixture(scope="module")
async def owner(security_pool: Any) -> TenantData:
    return await make_tenant_data(security_pool, "size")


@pytest.fixture(scope="module")
async def apps(
    security_db_url: str,
    amqp_url: str,
    amqp_namespace: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[dict[str, FastAPI]]:
    ns = f"{amqp_namespace}_size"
    api = api_app(
        api_settings(security_db_url, amqp_url, ns, tmp_path_factory.mktemp("b"))
    )
    ingest = ingest_app(ingest_settings(security_db_url, amqp_url, ns))
    async with api.router.lifespan_context(api), ingest.router.lifespan_context(ingest):
        yield {"api": api, "ingest": ingest}
    await drop_namespace(amqp_url, ns)


async def _drive(
    app: FastAPI,
    path: str,
    headers: dict[str, str],
    *,
    query: str = "",
    declared: int | None = None,
) -> tuple[int, int]:
    """POST an endless chunked body; return (status, bytes the server pulled)."""
    pulled = 0
    raw = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    if declared is not None:
        raw.append((b"content-length", str(declared).encode()))
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": raw,
        "client": ("127.0.0.1", 1),
        "server": ("test", 80),
    }
    status: list[int] = []

    async def receive() -> dict[str, Any]:
        nonlocal pulled
        if status or pulled >= HUGE:
            return {"type": "http.disconnect"}
        pulled += CHUNK
        return {"type": "http.request", "body": b"{" * CHUNK, "more_body": True}

    async def send(message: MutableMapping[str, Any]) -> None:
        if message["type"] == "http.response.start":
            status.append(message["status"])

    await app(scope, receive, send)
    return status[0], pulled


def _cases(owner: TenantData) -> list[tuple[str, str, dict[str, str], str, int]]:
    json_ = {"content-type": "application/json"}
    octets = {"content-type": "application/octet-stream"}
    return [
        ("api", "/api/tenants", {**owner.auth, **json_}, "", MAX_BODY),
        ("api", "/api/devices/claim", {**owner.auth, **json_}, "", MAX_BODY),
        (
            "api",
            "/api/artifacts/upload",
            {**owner.auth, **octets},
            f"tenant={owner.tenant}&version=9",
            MAX_UPLOAD,
        ),
        (
            "ingest",
            f"/api/devices/{owner.device_id}/heartbeat",
            {**owner.device_auth, **json_},
            "",
            MAX_BODY,
        ),
    ]


async def test_streamed_body_cut_at_limit(
    apps: dict[str, FastAPI], owner: TenantData, figure: Callable[[str], None]
) -> None:
    worst = 0
    cases = _cases(owner)
    for service, path, headers, query, limit in cases:
        status, pulled = await _drive(apps[service], path, headers, query=query)
        assert status == 413, (service, path, status)
        assert pulled <= limit + CHUNK, (path, pulled, limit)
        assert pulled < HUGE
        worst = max(worst, pulled - limit)
    figure(
        f"BODY LIMIT streamed: routes={len(cases)} status=413 "
        f"max_bytes_read_over_limit={worst} (chunk={CHUNK}) of {HUGE} offered"
    )


async def test_declared_length_refused_before_reading(
    apps: dict[str, FastAPI], owner: TenantData, figure: Callable[[str], None]
) -> None:
    cases = _cases(owner)
    for service, path, headers, query, limit in cases:
        status, pulled = await _drive(
            apps[service], path, headers, query=query, declared=limit + 1
        )
        assert (status, pulled) == (413, 0), (service, path)
    figure(f"BODY LIMIT content-length: routes={len(cases)} status=413 bytes_read=0")


async def test_upload_within_its_own_limit_passes(
    apps: dict[str, FastAPI], owner: TenantData, tmp_path: Path
) -> None:
    """The upload's limit is its own: a body above the general limit but below the
    upload limit is stored (the general limit did not cut it)."""
    import httpx

    body = b"x" * (MAX_BODY * 2)
    transport = httpx.ASGITransport(app=apps["api"])
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as c:
        r = await c.post(
            "/api/artifacts/upload",
            params={"tenant": owner.tenant, "version": "2"},
            content=body,
            headers={**owner.auth, "content-type": "application/octet-stream"},
        )
    assert r.status_code == 201, r.text
    assert r.json()["size"] == len(body)
