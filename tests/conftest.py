"""Session fixtures: a throwaway migrated database and an AMQP namespace per run."""

from __future__ import annotations

import contextlib
import os
import re
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import asyncpg
import pytest

from tests.support import figures
from tests.support.leftovers import Leftovers, find_leftovers
from tests.support.processes import leaked_secrets
from tests.support.s3 import S3Server, s3_server
from tests.support.services import service_url, unique_name, with_database
from xdp47_common.adapters.migrations import migrate
from xdp47_common.adapters.pg import create_pool

# Suites whose fixtures span modules (see pytest_collection_modifyitems).
_ONE_WORKER_SUITES = frozenset({"faults", "browser"})

# The run's id: minted by the controller (or the only process), handed to every
# pytest-xdist worker, so all the run's AMQP namespaces share one prefix.
_RUN = pytest.StashKey[str]()
_LEFTOVERS = pytest.StashKey[Leftovers]()


def pytest_configure(config: pytest.Config) -> None:
    workerinput = getattr(config, "workerinput", None)
    config.stash[_RUN] = (
        workerinput["xdp47_run"] if workerinput else uuid.uuid4().hex[:10]
    )


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    node.workerinput["xdp47_run"] = node.config.stash[_RUN]


def _namespace_prefix(config: pytest.Config) -> str:
    return f"t_{config.stash[_RUN]}_"


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """On the controller (or the only process), after every worker is done: the
    run fails if the shared broker still holds a queue or exchange of its
    namespaces. Each fixture deletes what it declared; this names the one that
    did not."""
    config = session.config
    url = os.environ.get("XDP47_TEST_AMQP_URL")
    if hasattr(config, "workerinput") or not url or session.testscollected == 0:
        return
    if config.option.collectonly:
        return
    found = find_leftovers(url, _namespace_prefix(config))
    config.stash[_LEFTOVERS] = found
    if found.names and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


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


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, config: pytest.Config
) -> None:
    for section, lines in figures.SHOWN.items():
        terminalreporter.section(section)
        for line in lines:
            terminalreporter.write_line(line)
    found = config.stash.get(_LEFTOVERS, None)
    if found is None:
        return
    prefix = _namespace_prefix(config)
    if found.skipped:
        terminalreporter.write_line(f"broker leftovers not checked: {found.skipped}")
    elif found.names:
        terminalreporter.section("broker leftovers", red=True)
        terminalreporter.write_line(
            f"the shared RabbitMQ still holds {len(found.queues)} queue(s) and "
            f"{len(found.exchanges)} exchange(s) under {prefix}: the fixture that "
            "declared them must delete them on teardown",
            red=True,
        )
        for name in found.names:
            terminalreporter.write_line(f"  {name}")
    else:
        terminalreporter.write_line(f"broker leftovers: none under {prefix}")


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
def amqp_namespace(request: pytest.FixtureRequest) -> str:
    """This process's namespace on the shared broker: ``t_<run>_<worker>``. Every
    fixture declares below it and deletes what it declared
    (``pytest_sessionfinish`` checks)."""
    config = request.config
    worker = getattr(config, "workerinput", {}).get("workerid", "main")
    return f"{_namespace_prefix(config)}{worker}".lower()


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
