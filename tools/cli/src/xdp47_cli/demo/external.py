"""External mode: api, ingest and scheduler as three processes.

Used when ``XDP47_DB_URL`` and ``XDP47_AMQP_URL`` are both set: the schema is
brought up to date with ``xdp47-migrate``, then each service runs as its own
process (the same console scripts production runs, so they fail fast on an
unreachable dependency), on free ports unless configured, with its log in the
demo folder. The processes get a session of their own, so a Ctrl-C in the
terminal reaches only the demo, which then stops them in order.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import IO

import httpx

from xdp47_cli.demo.control import DemoError, Endpoints, free_port, wait_ready

__all__ = ["ExternalControlPlane"]

_STOP_TIMEOUT = 20.0


def _command(name: str) -> list[str]:
    beside = Path(sys.executable).parent / name
    if beside.exists():
        return [str(beside)]
    found = shutil.which(name)
    if found is None:
        raise DemoError(f"{name} is not installed (install xdp47-cli[demo])")
    return [found]


class _Service:
    def __init__(self, name: str, log_path: Path) -> None:
        self.name = name
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def spawn(self, env: dict[str, str]) -> None:
        self._log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            _command(f"xdp47-{self.name}"),
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def died(self) -> str | None:
        if self.process is None or self.process.poll() is None:
            return None
        tail = self.log_path.read_text(errors="replace").strip().splitlines()[-3:]
        return f"exit {self.process.returncode}: {' | '.join(tail)}"

    def terminate(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)

    async def wait(self) -> None:
        if self.process is None:
            return
        try:
            await asyncio.wait_for(asyncio.to_thread(self.process.wait), _STOP_TIMEOUT)
        except TimeoutError:
            self.process.kill()
            await asyncio.to_thread(self.process.wait)
        if self._log is not None:
            self._log.close()


class ExternalControlPlane:
    mode = "external"

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
        self._sched_port = free_port()
        logs = demo_dir / "logs"
        self._services = [
            _Service(name, logs / f"{name}.log")
            for name in ("api", "ingest", "scheduler")
        ]

    def describe(self) -> str:
        logs = self._dir / "logs"
        return (
            "external mode: api, ingest and scheduler as separate processes on "
            f"XDP47_DB_URL and XDP47_AMQP_URL (logs in {logs})"
        )

    async def start(self) -> Endpoints:
        (self._dir / "logs").mkdir(parents=True, exist_ok=True)
        env = {**os.environ, **self._env}
        migrate = await asyncio.to_thread(
            subprocess.run,  # our own console script
            _command("xdp47-migrate"),
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        if migrate.returncode != 0:
            raise DemoError(
                f"xdp47-migrate failed: {(migrate.stderr or migrate.stdout).strip()}"
            )
        ports = {
            "api": self._api_port,
            "ingest": self._ingest_port,
            "scheduler": None,
        }
        for service in self._services:
            own = dict(env)
            port = ports[service.name]
            if port is not None:
                own["XDP47_LISTEN_ADDR"] = f"127.0.0.1:{port}"
            if service.name == "api":
                # api and ingest listen apart: claims tell agents where ingest is.
                own["XDP47_INGEST_PUBLIC_URL"] = f"http://127.0.0.1:{self._ingest_port}"
            else:
                own["XDP47_SCHED_HTTP_ADDR"] = f"127.0.0.1:{self._sched_port}"
            service.spawn(own)
        api = f"http://127.0.0.1:{self._api_port}"
        ingest = f"http://127.0.0.1:{self._ingest_port}"
        sched = f"http://127.0.0.1:{self._sched_port}"
        async with httpx.AsyncClient() as client:
            bases = (api, ingest, sched)
            for service, base in zip(self._services, bases, strict=True):
                name = f"xdp47-{service.name}"
                await wait_ready(client, f"{base}/readyz", name, alive=service.died)
        return Endpoints(api, ingest)

    async def stop(self) -> None:
        # Devices first (the caller), then the API, ingest, and the scheduler last.
        for service in self._services:
            service.terminate()
        for service in self._services:
            await service.wait()
