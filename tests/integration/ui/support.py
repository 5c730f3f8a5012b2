"""Helpers of the web UI tests: a browser-like client (cookies, CSRF token read
from the page) signed in with a token."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import httpx
from fastapi import FastAPI

BASE_URL = "http://ui.test"
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_of(html: str) -> str:
    found = _CSRF.search(html)
    assert found, "no CSRF field on the page"
    return found.group(1)


@asynccontextmanager
async def browser(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as c:
        yield c


async def sign_in(client: httpx.AsyncClient, token: str) -> httpx.Response:
    page = await client.get("/ui/signin")
    return await client.post(
        "/ui/signin", data={"token": token, "csrf_token": csrf_of(page.text)}
    )


@asynccontextmanager
async def signed_in(app: FastAPI, token: str) -> AsyncIterator[httpx.AsyncClient]:
    async with browser(app) as client:
        answer = await sign_in(client, token)
        assert answer.status_code == 303, answer.text
        yield client


async def post_form(
    client: httpx.AsyncClient, page: str, action: str, data: dict[str, str]
) -> httpx.Response:
    """Load ``page`` for its CSRF token, then submit ``data`` to ``action``."""
    html = (await client.get(page)).text
    return await client.post(action, data={**data, "csrf_token": csrf_of(html)})


async def insert_devices(
    pool: asyncpg.Pool[Any],
    tenant: str,
    ids: list[str],
    *,
    labels: dict[str, str] | None = None,
    status: str = "online",
    version: str | None = "1.0.0",
) -> None:
    """Insert devices with COPY (fast enough for 10,000)."""
    records = [(tenant, device_id, "stable", status, version) for device_id in ids]
    async with pool.acquire() as conn:
        await conn.copy_records_to_table(
            "devices",
            records=records,
            columns=["tenant", "id", "channel", "status", "current_version"],
        )
        if labels:  # the JSON codec is text-only, so labels are set afterwards
            await conn.execute(
                "UPDATE devices SET labels = $3 WHERE tenant = $1 AND id = ANY($2)",
                tenant,
                ids,
                labels,
            )
