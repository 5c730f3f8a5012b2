"""Session fixtures: a throwaway migrated database and an AMQP namespace per run."""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator, Iterator
from typing import Any

import asyncpg
import pytest

from tests.support import figures
from tests.support.processes import leaked_secrets
from tests.support.s3 import S3Server, s3_server
from tests.support.services import service_url, unique_name, with_database
from xdp47_common.adapters.migrations import migrate
from xdp47_common.adapters.pg import create_pool

# Suites whose fixtures span modules (see pytest_collection_modifyitems).
_ONE_WORKER_SUITES = frozenset({"faults", "browser"})


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):
    report = yield
    report.user_properties.extend(figures.drain())
    return report


def pytest_collection_modifyitems(
    config: pytest.Config, items: list[pytest.Item]
) -> None:
    """Groups for pytest-xdist's ``--dist loadgroup`` (``scripts/test``): a test
    module's tests run on one worker, so its module fixtures (a live stack, a
    fleet) start once; the fault and browser suites each run on one worker, so
    their package and session fixtures (own broker and database cluster, the
    undisturbed reference run, the browser) start once."""
    for item in items:
        parts = item.path.relative_to(config.rootpath).parts
        whole_suite = len(parts) > 2 and parts[1] in _ONE_WORKER_SUITES
        group = parts[1] if whole_suite else "/".join(parts)
        item.add_marker(pytest.mark.xdist_group(group))


# A secret minted for a parametrized case (random each run) would make its test
# id differ between pytest-xdist workers, which refuse to run then.
_SECRET_IN_ID = re.compile(r"(xdp47[td]_)[0-9A-Za-z]+")


def pytest_make_parametrize_id(
    config: pytest.Config, val: object, argname: str
) -> str | None:
    if isinstance(val, str) and _SECRET_IN_ID.search(val):
        return _SECRET_IN_ID.sub(r"\1<secret>", val)
    return None


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    figures.collect(report.user_properties)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for section, lines in figures.SHOWN.items():
        terminalreporter.section(section)
        for line in lines:
            terminalreporter.write_line(line)


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
