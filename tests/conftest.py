"""Session fixtures: a throwaway migrated database and an AMQP namespace per run."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from typing import Any

import asyncpg
import pytest

from tests.support.processes import leaked_secrets
from tests.support.s3 import S3Server, s3_server
from tests.support.services import service_url, unique_name, with_database
from xdp47_common.adapters.migrations import migrate
from xdp47_common.adapters.pg import create_pool


@pytest.fixture(scope="session", autouse=True)
def no_secret_in_any_process_log() -> Iterator[None]:
    """After the run, no log of any process it started holds an XDP47 secret
    (tokens and credentials minted by any test, sent in any URL or header)."""
    yield
    leaks = leaked_secrets()
    assert leaks == [], "secrets in process logs:\n" + "\n".join(leaks)


@pytest.fixture(scope="session")
def server_db_url() -> Iterator[str]:
    with service_url("db") as url:
        yield url


@pytest.fixture(scope="session")
def amqp_url() -> Iterator[str]:
    with service_url("amqp") as url:
        yield url


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    with service_url("redis") as url:
        yield url


@pytest.fixture(scope="session")
def amqp_namespace() -> str:
    return unique_name("t").lower()


async def create_database(server_url: str, name: str) -> str:
    conn = await asyncpg.connect(server_url)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return with_database(server_url, name)


async def drop_database(server_url: str, name: str) -> None:
    conn = await asyncpg.connect(server_url)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@contextlib.asynccontextmanager
async def migrated_database(server_url: str, prefix: str) -> AsyncIterator[str]:
    """A fresh database named ``<prefix>_…`` with every migration applied; its
    URL while inside, dropped afterwards."""
    name = unique_name(prefix)
    url = await create_database(server_url, name)
    try:
        conn = await asyncpg.connect(url)
        try:
            await migrate(conn)
        finally:
            await conn.close()
        yield url
    finally:
        await drop_database(server_url, name)


@pytest.fixture(scope="session")
async def db_url(server_db_url: str) -> AsyncIterator[str]:
    """A fresh database with every migration applied, dropped after the session."""
    async with migrated_database(server_db_url, "xdp47_test") as url:
        yield url


@pytest.fixture(scope="session")
async def pool(db_url: str) -> AsyncIterator[asyncpg.Pool[Any]]:
    p = await create_pool(db_url, min_size=1, max_size=10)
    yield p
    await p.close()


@pytest.fixture(scope="session")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """An S3 server: ``XDP47_TEST_S3_URL``, else moto's (tests.support.s3)."""
    with s3_server(tmp_path_factory.mktemp("s3")) as server:
        yield server
