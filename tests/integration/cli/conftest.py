"""A live API for the CLI tests: ``xdp47-api`` as a process on a free port (the
shared harness in ``tests.support.processes``), on the session's database and
broker (its own AMQP namespace), in development with the dev token enabled; and a
runner for the ``xdp47`` script against it."""

from __future__ import annotations

import asyncio
import os
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support.amqp import drop_namespace
from tests.support.processes import BIN, ProcessGroup, clean_env, free_port


@dataclass(frozen=True)
class LiveApi:
    url: str
    token: str  # the dev token: every scope, tenant ``tenant``
    tenant: str


@dataclass(frozen=True)
class Ran:
    code: int
    stdout: str
    stderr: str


@pytest.fixture(scope="session")
def cli_namespace(amqp_namespace: str) -> str:
    return f"{amqp_namespace}_cli"


@pytest.fixture(scope="session")
def live_api(
    db_url: str,
    amqp_url: str,
    cli_namespace: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[LiveApi]:
    port = free_port()
    token = f"devtoken-{uuid.uuid4().hex[:12]}"
    tenant = f"cli-{uuid.uuid4().hex[:8]}"
    root = tmp_path_factory.mktemp("api")
    (root / "blobs").mkdir()
    env = clean_env(
        XDP47_ENV="development",
        XDP47_DEV_TOKEN_ENABLED="true",
        XDP47_AGENT_TOKEN=token,
        XDP47_DEV_TENANT=tenant,
        XDP47_DB_URL=db_url,
        XDP47_AMQP_URL=amqp_url,
        XDP47_AMQP_NAMESPACE=cli_namespace,
        XDP47_LISTEN_ADDR=f"127.0.0.1:{port}",
        XDP47_BLOB_DIR=str(root / "blobs"),
    )
    url = f"http://127.0.0.1:{port}"
    with ProcessGroup(root) as group:
        group.start("api", "xdp47-api", env, ready_url=f"{url}/readyz")
        yield LiveApi(url=url, token=token, tenant=tenant)


@pytest.fixture(scope="session")
async def _cleanup_topology(amqp_url: str, cli_namespace: str) -> AsyncIterator[None]:
    yield
    await drop_namespace(amqp_url, cli_namespace)


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    return tmp_path / "xdp47" / "config.json"


def cli_env(config_file: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("XDP47_")}
    return env | {"XDP47_CONFIG": str(config_file), "COLUMNS": "200"}


@pytest.fixture
def xdp47(config_file: Path, live_api: LiveApi, _cleanup_topology: None):
    """Run the ``xdp47`` script (no terminal) with this test's config file."""

    def run(*args: str, timeout: float = 60) -> Ran:
        done = subprocess.run(
            [str(BIN / "xdp47"), *args],
            env=cli_env(config_file),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        return Ran(done.returncode, done.stdout, done.stderr)

    return run


async def run_async(config_file: Path, *args: str) -> asyncio.subprocess.Process:
    """Start the ``xdp47`` script without waiting, for tests that act meanwhile."""
    return await asyncio.create_subprocess_exec(
        str(BIN / "xdp47"),
        *args,
        env=cli_env(config_file),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


def log_in(xdp47: Any, api: LiveApi) -> None:
    """``xdp47 login`` with the live API's dev token and tenant."""
    done = xdp47(
        "login", "--url", api.url, "--token", api.token, "--tenant", api.tenant
    )
    assert done.code == 0, done.stderr
