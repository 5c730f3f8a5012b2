"""The control plane as real processes: ``xdp47-api``, ``xdp47-ingest`` and
``xdp47-scheduler`` on free ports, on one database and one AMQP namespace.

Owns the environment the three share (development mode with a dev token, so the
test can claim devices and act as an operator without minting tokens first) and
the clean-up of the namespace's exchanges and queues on the shared broker.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Coroutine, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import asyncpg

from tests.support.amqp import drop_namespace
from tests.support.processes import (
    ManagedProcess,
    ProcessGroup,
    clean_env,
    free_port,
    run_migrate,
)
from tests.support.services import unique_name, with_database

__all__ = [
    "ControlPlane",
    "delete_namespace",
    "fresh_database",
    "run_async",
    "start_control_plane",
]

T = TypeVar("T")


def run_async(coro: Coroutine[Any, Any, T], timeout: float = 60) -> T:
    """Run ``coro`` on a fresh loop in a worker thread: callable from sync code
    whether or not this thread already runs a loop (pytest-asyncio, Playwright)."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result(timeout=timeout)


async def _execute(server_url: str, sql: str) -> None:
    conn = await asyncpg.connect(server_url)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@contextlib.contextmanager
def fresh_database(server_url: str, log_dir: Path, prefix: str) -> Iterator[str]:
    """A new database migrated by the ``xdp47-migrate`` command, dropped after.

    A scheduler process reconciles every rollout of its database, so a stack
    gets a database of its own rather than the session's shared one.
    """
    name = unique_name(prefix)
    run_async(_execute(server_url, f'CREATE DATABASE "{name}"'))
    try:
        url = with_database(server_url, name)
        run_migrate(url, log_dir)
        yield url
    finally:
        drop = f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'
        run_async(_execute(server_url, drop))


@dataclass(frozen=True)
class ControlPlane:
    api_url: str
    ingest_url: str
    scheduler_url: str  # /livez, /readyz, /metrics
    token: str  # the dev token: every scope, tenant ``tenant``
    tenant: str
    namespace: str
    db_url: str
    amqp_url: str
    api: ManagedProcess
    ingest: ManagedProcess
    scheduler: ManagedProcess

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def start_control_plane(
    group: ProcessGroup,
    *,
    db_url: str,
    amqp_url: str,
    namespace: str,
    blob_dir: Path,
    tenant: str | None = None,
    token: str | None = None,
    sched_interval: float = 0.2,
    extra_env: Mapping[str, str] | None = None,
    scheduler_command: str | Sequence[str] = "xdp47-scheduler",
) -> ControlPlane:
    """Start api, ingest and scheduler together and wait until all are ready.

    The api's ``XDP47_PUBLIC_URL`` is its own address, so uploaded artifacts get
    URIs the agents reach, and its ``XDP47_INGEST_PUBLIC_URL`` is ingest's, so an
    agent given only the seed's variables finds ingest through its claim.
    ``extra_env`` overrides anything (e.g. scheduler defaults such as
    ``XDP47_SCHED_GRACE``); ``scheduler_command`` runs another scheduler
    entry point (the fault tests' ``tests.support.requeuing_bus``).
    """
    tenant = tenant or f"e2e-{uuid.uuid4().hex[:8]}"
    token = token or f"devtoken-{uuid.uuid4().hex[:12]}"
    api_port, ingest_port, sched_port = free_port(), free_port(), free_port()
    api_url = f"http://127.0.0.1:{api_port}"
    ingest_url = f"http://127.0.0.1:{ingest_port}"
    scheduler_url = f"http://127.0.0.1:{sched_port}"
    blob_dir.mkdir(parents=True, exist_ok=True)
    shared = {
        "XDP47_ENV": "development",
        "XDP47_DEV_TOKEN_ENABLED": "true",
        "XDP47_AGENT_TOKEN": token,
        "XDP47_DEV_TENANT": tenant,
        "XDP47_DB_URL": db_url,
        "XDP47_AMQP_URL": amqp_url,
        "XDP47_AMQP_NAMESPACE": namespace,
        "XDP47_DB_POOL_MAX": "4",
        "XDP47_SCHED_INTERVAL": str(sched_interval),
        "XDP47_SCHED_WAVE_DEADLINE": "120",
        "XDP47_SCHED_OFFLINE_AFTER": "30",
        "XDP47_LOG_LEVEL": "INFO",
    } | dict(extra_env or {})
    # Start all three before waiting on any: their start-ups overlap.
    api = group.start(
        "api",
        "xdp47-api",
        clean_env(
            **shared,
            XDP47_LISTEN_ADDR=f"127.0.0.1:{api_port}",
            XDP47_PUBLIC_URL=api_url,
            # No gateway in front: claim answers tell agents where ingest is.
            XDP47_INGEST_PUBLIC_URL=ingest_url,
            XDP47_BLOB_DIR=str(blob_dir),
        ),
        ready_url=f"{api_url}/readyz",
        wait=False,
    )
    ingest = group.start(
        "ingest",
        "xdp47-ingest",
        clean_env(**shared, XDP47_LISTEN_ADDR=f"127.0.0.1:{ingest_port}"),
        ready_url=f"{ingest_url}/readyz",
        wait=False,
    )
    scheduler = group.start(
        "scheduler",
        scheduler_command,
        clean_env(**shared, XDP47_SCHED_HTTP_ADDR=f"127.0.0.1:{sched_port}"),
        ready_url=f"{scheduler_url}/readyz",
        wait=False,
    )
    for proc in (api, ingest, scheduler):
        proc.wait_ready()
    return ControlPlane(
        api_url=api_url,
        ingest_url=ingest_url,
        scheduler_url=scheduler_url,
        token=token,
        tenant=tenant,
        namespace=namespace,
        db_url=db_url,
        amqp_url=amqp_url,
        api=api,
        ingest=ingest,
        scheduler=scheduler,
    )


def delete_namespace(amqp_url: str, namespace: str) -> None:
    """Delete the namespace's exchanges and queues (from any thread or loop)."""
    run_async(drop_namespace(amqp_url, namespace))
