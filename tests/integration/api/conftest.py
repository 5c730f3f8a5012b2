"""Fixtures of the API integration tests: one app for the session, driven in
process through httpx's ASGI transport, on the session's database and broker."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest
from fastapi import FastAPI

from tests.integration.api.support import client_for, make_tenant, running_app
from tests.support.amqp import drop_namespace
from xdp47_common.settings import ControlSettings

MAX_BODY = 8192
MAX_UPLOAD = 64 << 10  # above MAX_BODY: the upload route has a limit of its own


@pytest.fixture(scope="session")
def api_namespace(amqp_namespace: str) -> str:
    # Own prefix inside the session's namespace: other suites' consumers of
    # scheduler.commands must not take the commands these tests look for.
    return f"{amqp_namespace}_api"


@pytest.fixture(scope="session")
def api_settings(
    db_url: str,
    amqp_url: str,
    api_namespace: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> ControlSettings:
    return ControlSettings(
        db_url=db_url,
        amqp_url=amqp_url,
        amqp_namespace=api_namespace,
        max_body_bytes=MAX_BODY,
        max_upload_bytes=MAX_UPLOAD,
        blob_dir=str(tmp_path_factory.mktemp("blobs")),
        publish_timeout=5.0,
    )


@pytest.fixture(scope="session")
async def app(api_settings: ControlSettings) -> AsyncIterator[FastAPI]:
    try:
        async with running_app(api_settings) as application:
            yield application
    finally:
        await drop_namespace(api_settings.amqp_url, api_settings.amqp_namespace)


@pytest.fixture(scope="session")
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(app) as c:
        yield c


@pytest.fixture
async def tenant(pool: asyncpg.Pool[Any]) -> str:
    return await make_tenant(pool, "a")
