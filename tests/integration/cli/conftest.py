"""A live API for the CLI tests: ``xdp47-api`` as a process on a free port, on the
session's database and broker (its own AMQP namespace), in development with the
dev token enabled; and a runner for the ``xdp47`` script against it."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from tenacity import Retrying, retry_if_exception_type, stop_after_delay, wait_fixed

from xdp47_common.adapters.amqp import connect
from xdp47_common.topology import Topology

BIN = Path(sys.executable).parent


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


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


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
    port = _free_port()
    token = f"devtoken-{uuid.uuid4().hex[:12]}"
    tenant = f"cli-{uuid.uuid4().hex[:8]}"
    logs = tmp_path_factory.mktemp("api") / "api.log"
    env = os.environ | {
        "XDP47_ENV": "development",
        "XDP47_DEV_TOKEN_ENABLED": "true",
        "XDP47_AGENT_TOKEN": token,
        "XDP47_DEV_TENANT": tenant,
        "XDP47_DB_URL": db_url,
        "XDP47_AMQP_URL": amqp_url,
        "XDP47_AMQP_NAMESPACE": cli_namespace,
        "XDP47_LISTEN_ADDR": f"127.0.0.1:{port}",
        "XDP47_BLOB_DIR": str(tmp_path_factory.mktemp("blobs")),
    }
    with logs.open("w") as log:
        process = subprocess.Popen(
            [str(BIN / "xdp47-api")], env=env, stdout=log, stderr=subprocess.STDOUT
        )
    url = f"http://127.0.0.1:{port}"
    try:
        for attempt in Retrying(
            stop=stop_after_delay(30),
            wait=wait_fixed(0.2),
            retry=retry_if_exception_type((httpx.TransportError, AssertionError)),
            reraise=True,
        ):
            with attempt:
                assert process.poll() is None, logs.read_text()
                assert httpx.get(f"{url}/readyz", timeout=2).status_code == 200
        yield LiveApi(url=url, token=token, tenant=tenant)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="session")
async def _cleanup_topology(amqp_url: str, cli_namespace: str) -> AsyncIterator[None]:
    yield
    topology = Topology(cli_namespace)
    connection = await connect(amqp_url)
    async with connection:
        channel = await connection.channel()
        for queue, _, _ in topology.work_queues:
            await channel.queue_delete(queue)
            await channel.queue_delete(topology.dead_queue(queue))
        for exchange in (
            topology.telemetry,
            topology.commands,
            topology.events,
            topology.dlx,
        ):
            await channel.exchange_delete(exchange)


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
