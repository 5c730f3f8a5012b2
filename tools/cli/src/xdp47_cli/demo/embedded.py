"""Embedded mode: a PostgreSQL of its own and the three services in one process.

Used when ``XDP47_DB_URL`` or ``XDP47_AMQP_URL`` is unset, so a laptop with
neither can run the demo. PostgreSQL 16 comes from the ``pgserver`` wheel and
keeps its data under ``<demo dir>/pg`` (``./var/demo/pg`` by default, or
``$XDP47_DEMO_DIR/pg``); it listens on a Unix socket only. api, ingest and the
scheduler run on this event loop and share one ``InMemoryBus``, which passes the
same contract suite as the RabbitMQ adapter (``tests/contract/bus``). Only the
demo does this: the production commands never fall back to it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
import uvicorn
from fastapi import FastAPI

from xdp47_api.app import create_app as create_api
from xdp47_cli.demo.control import DemoError, Endpoints, free_port, wait_ready
from xdp47_common.adapters.memory import InMemoryBus
from xdp47_common.migrate import run as migrate
from xdp47_common.settings import ControlSettings
from xdp47_common.topology import Topology
from xdp47_ingest import IngestSettings
from xdp47_ingest import create_app as create_ingest
from xdp47_scheduler.service import Scheduler
from xdp47_scheduler.settings import SchedulerSettings

__all__ = ["EmbeddedControlPlane"]


class _Server(uvicorn.Server):
    """A uvicorn server that leaves signals to the demo (two share a loop)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _start_pgserver(data: Path) -> Any:
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset (root shells, CI).
        warnings.simplefilter("ignore")
        from pgserver.postgres_server import get_server

        data.mkdir(parents=True, exist_ok=True)
        return get_server(data, cleanup_mode="stop")


class EmbeddedControlPlane:
    mode = "embedded"

    def __init__(
        self,
        demo_dir: Path,
        env: dict[str, str],
        *,
        api_port: int | None = None,
        ingest_port: int | None = None,
    ) -> None:
        self._dir = demo_dir
        self._env = env
        self._api_port = api_port or free_port()
        self._ingest_port = ingest_port or free_port()
        self._pg: Any = None
        self._pg_pid: int | None = None
        self._bus: InMemoryBus | None = None
        self._scheduler: Scheduler | None = None
        self._servers: list[tuple[_Server, asyncio.Task[None]]] = []

    @property
    def pg_dir(self) -> Path:
        return self._dir / "pg"

    def describe(self) -> str:
        return (
            "embedded mode: XDP47_DB_URL / XDP47_AMQP_URL unset, so PostgreSQL "
            f"(pgserver, data in {self.pg_dir}) and api + ingest + scheduler in "
            "this process over the in-memory bus"
        )

    def _settings(self, port: int | None, db_url: str) -> dict[str, Any]:
        values: dict[str, Any] = {
            k.removeprefix("XDP47_").lower(): v for k, v in self._env.items()
        }
        values["db_url"] = db_url
        values["db_pool_max"] = 5
        if port is not None:
            values["listen_addr"] = f"127.0.0.1:{port}"
        return values

    async def start(self) -> Endpoints:
        try:
            self._pg = await asyncio.to_thread(_start_pgserver, self.pg_dir)
        except Exception as exc:  # pgserver raises many kinds on a bad data dir
            raise DemoError(
                f"could not start PostgreSQL in {self.pg_dir}: {exc}"
            ) from exc
        self._pg_pid = self._pg.get_pid()
        db_url = self._pg.get_uri()
        await migrate(db_url)
        self._bus = bus = InMemoryBus(Topology())
        await bus.start()
        api_url = f"http://127.0.0.1:{self._api_port}"
        ingest_url = f"http://127.0.0.1:{self._ingest_port}"
        api = create_api(
            ControlSettings(
                **self._settings(self._api_port, db_url),
                public_url=api_url,
                # api and ingest listen apart: claims tell agents where ingest is.
                ingest_public_url=ingest_url,
            ),
            bus=bus,
        )
        ingest = create_ingest(
            IngestSettings(**self._settings(self._ingest_port, db_url)), bus=bus
        )
        self._scheduler = Scheduler(
            SchedulerSettings(**self._settings(None, db_url)), bus=bus
        )
        await self._scheduler.start()
        for app, port in ((api, self._api_port), (ingest, self._ingest_port)):
            self._serve(app, port)
        async with httpx.AsyncClient() as client:
            for url, what in ((api_url, "api"), (ingest_url, "ingest")):
                await wait_ready(client, f"{url}/readyz", what, alive=self._died)
        return Endpoints(api_url, ingest_url)

    def _serve(self, app: FastAPI, port: int) -> None:
        config = uvicorn.Config(
            app,
            host="127.0.0.1",
            port=port,
            log_config=None,
            access_log=False,
            timeout_keep_alive=75,
            timeout_graceful_shutdown=5,
        )
        server = _Server(config)
        task = asyncio.create_task(server.serve(), name=f"uvicorn:{port}")
        self._servers.append((server, task))

    def _died(self) -> str | None:
        for _, task in self._servers:
            if task.done():
                exc = None if task.cancelled() else task.exception()
                return repr(exc) if exc else "the server stopped"
        return None

    async def stop(self) -> None:
        for server, _ in self._servers:
            server.should_exit = True
        for _, task in self._servers:
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.wait_for(task, 15)
        self._servers.clear()
        if self._scheduler is not None:
            await self._scheduler.stop()
        if self._bus is not None:
            await self._bus.close()
        if self._pg is not None:
            await asyncio.to_thread(self._pg.cleanup)
            self._pg = None
        await asyncio.to_thread(self._ensure_postmaster_gone)

    def _ensure_postmaster_gone(self) -> None:
        """pgserver skips its stop when a stale handle is listed; make sure."""
        pid = self._pg_pid
        if pid is None or not psutil.pid_exists(pid):
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGINT)  # fast shutdown
        with contextlib.suppress(psutil.Error):
            psutil.Process(pid).wait(20)
