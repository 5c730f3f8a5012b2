"""The system under test for the benchmarks, as real processes.

Reuses the test harness (``tests/support``): a fresh migrated database, a unique
AMQP namespace, ``xdp47-api`` + ``xdp47-ingest`` + ``xdp47-scheduler`` started
by ``start_control_plane``, plus extra ingest variants (other environment, own
port) and the empty FastAPI baseline. Pins what it starts to CPU 0 and the load
generator to CPU 1 (when the machine has two CPUs). PostgreSQL and RabbitMQ are
the machine's shared servers: they are measured, never pinned (pinning them
would slow down everyone else using them).

Also owns the correctness checks every measured run must pass: the queue is
drained, nothing was dead-lettered, the scheduler committed at least as many
heartbeats as ingest accepted, and each device's stored ``last_seq`` is the
highest seq ingest answered 202 for.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # tests.support is the process harness we reuse
    sys.path.insert(0, str(ROOT))

from otlp_sink import OtlpSink  # noqa: E402
from procstat import CpuGroups, beam_pids, pin, tree_pids  # noqa: E402
from tests.support.control_plane import (  # noqa: E402
    ControlPlane,
    delete_namespace,
    fresh_database,
    start_control_plane,
)
from tests.support.processes import ManagedProcess, ProcessGroup, clean_env, free_port  # noqa: E402

from xdp47_common.adapters.amqp import connect  # noqa: E402
from xdp47_common.topology import Topology  # noqa: E402

__all__ = ["Stack", "open_stack"]

BENCH = Path(__file__).resolve().parent
SUT_CPUS = {0}
LOAD_CPUS = {1}
_COMMITTED = re.compile(r"^xdp47_scheduler_heartbeats_committed_total (\S+)$", re.M)
_ACCEPTED = re.compile(
    r'^xdp47_ingest_http_requests_total\{method="POST",'
    r'route="/api/devices/\{device_id\}/heartbeat",status="202"\} (\S+)$',
    re.M,
)
_CACHE = {
    result: re.compile(
        r"^xdp47_ingest_identity_cache_lookups_total"
        rf'\{{result="{result}"\}} (\S+)$',
        re.M,
    )
    for result in ("hit", "miss", "bypass")
}


@dataclass
class Stack:
    """A running control plane plus the variants and helpers a benchmark needs."""

    cp: ControlPlane
    group: ProcessGroup
    server_url: str
    workdir: Path
    ingests: dict[str, ManagedProcess] = field(default_factory=dict)
    urls: dict[str, str] = field(default_factory=dict)
    pinned: bool = False
    pin_enabled: bool = True
    otlp_sink: OtlpSink | None = None
    _db: asyncpg.Connection[Any] | None = None
    _generators: list[subprocess.Popen[str]] = field(default_factory=list)

    @property
    def topology(self) -> Topology:
        return Topology(self.cp.namespace)

    async def db(self) -> asyncpg.Connection[Any]:
        if self._db is None:
            self._db = await asyncpg.connect(self.cp.db_url)
        return self._db

    def add_ingest(self, name: str, **env: str) -> str:
        """Start another ingest with ``env`` overrides; return its URL."""
        port = free_port()
        proc = self.group.start(
            f"ingest-{name}",
            "xdp47-ingest",
            self.cp.ingest.env | {"XDP47_LISTEN_ADDR": f"127.0.0.1:{port}", **env},
            ready_url=f"http://127.0.0.1:{port}/readyz",
        )
        self.ingests[name] = proc
        self.urls[name] = f"http://127.0.0.1:{port}"
        self._pin(proc.pid)
        return self.urls[name]

    def add_scheduler(self, name: str) -> tuple[ManagedProcess, str]:
        """Start another ``xdp47-scheduler`` on the same database and namespace
        (its own metrics port); return it and its URL."""
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        proc = self.group.start(
            f"scheduler-{name}",
            "xdp47-scheduler",
            self.cp.scheduler.env | {"XDP47_SCHED_HTTP_ADDR": f"127.0.0.1:{port}"},
            ready_url=f"{url}/readyz",
        )
        self._pin(proc.pid)
        return proc, url

    async def cache_lookups(self) -> dict[str, float]:
        """The default ingest's identity-cache lookups by result since it started."""
        url = self.cp.ingest_url
        return {k: await _metric(url, pattern) for k, pattern in _CACHE.items()}

    async def online(self) -> int:
        """Devices of the stack's tenant whose status is ``online``."""
        db = await self.db()
        n: int = await db.fetchval(
            "SELECT count(*) FROM devices WHERE tenant = $1 AND status = 'online'",
            self.cp.tenant,
        )
        return n

    async def committed_by(self, scheduler_url: str) -> float:
        """One scheduler's count of heartbeats in committed batches."""
        return await _metric(scheduler_url, _COMMITTED)

    async def accepted_by(self, ingest_url: str) -> float:
        """Heartbeats one ingest answered 202 since it started."""
        return await _metric(ingest_url, _ACCEPTED)

    def add_baseline(
        self, name: str = "empty", *, app: str = "fastapi", server: str = "uvicorn"
    ) -> str:
        """Start ``baseline_app.py`` as ``name``: the empty FastAPI baseline, or
        (``app="raw"``) the floor of ``server``; return its URL."""
        port = free_port()
        argv = [sys.executable, str(BENCH / "baseline_app.py"), "--port", str(port)]
        proc = self.group.start(
            "baseline" if name == "empty" else f"baseline-{name}",
            [*argv, "--app", app, "--server", server],
            clean_env(),
            ready_url=f"http://127.0.0.1:{port}/livez",
        )
        self.ingests[name] = proc
        self.urls[name] = f"http://127.0.0.1:{port}"
        self._pin(proc.pid)
        return self.urls[name]

    def _pin(self, pid: int) -> None:
        if self.pin_enabled and len(os.sched_getaffinity(0)) >= 2:
            self.pinned = pin(pid, SUT_CPUS) or self.pinned

    async def pg_pids(self, *, client: bool = True, aux: bool = True) -> list[int]:
        """Backends of our database (not ours) and the server's own processes
        (postmaster, checkpointer, WAL writer ...: shared with other load)."""
        db = await self.db()
        rows = await db.fetch(
            "SELECT pid, backend_type, datname FROM pg_stat_activity "
            "WHERE pid <> pg_backend_pid()"
        )
        name = self.cp.db_url.rsplit("/", 1)[1]
        pids = [
            r["pid"]
            for r in rows
            if (client and r["datname"] == name)
            or (aux and r["backend_type"] != "client backend")
        ]
        if aux and pids:
            ppid = _ppid(pids[0])
            if ppid:
                pids.append(ppid)
        return pids

    async def cpu_groups(
        self,
        names: list[str],
        *,
        backends: bool = False,
        schedulers: dict[str, int] | None = None,
    ) -> CpuGroups:
        """CPU groups: the named ingest variants, scheduler, broker, postgres;
        with ``backends``, also ``postgres_backends``: only the backends of our
        database's connections (a subset of ``postgres``, which adds the server's
        own processes, shared with other load on the server). ``schedulers``:
        scheduler processes by name (``scheduler:<name>``) instead of the
        stack's one (``scheduler``)."""
        pg = await self.pg_pids()
        beams = beam_pids()
        # A variant's whole process tree: a server that runs its workers as
        # child processes is counted with them.
        groups = {f"ingest:{n}": _tree(self.ingests[n].pid) for n in names}
        if schedulers is None:
            groups["scheduler"] = _const(self.cp.scheduler.pid)
        else:
            groups |= {f"scheduler:{n}": _const(p) for n, p in schedulers.items()}
        groups |= {
            "broker": lambda: beams,
            "postgres": _later(self, pg),
        }
        if backends:
            groups["postgres_backends"] = _later(self, await self.pg_pids(aux=False))
        return CpuGroups(groups)

    async def committed(self) -> float:
        """The scheduler's count of heartbeats in committed batches."""
        return await _metric(self.cp.scheduler_url, _COMMITTED)

    async def accepted(self) -> float:
        """Heartbeats the default ingest answered 202 since it started."""
        return await _metric(self.cp.ingest_url, _ACCEPTED)

    async def depth(self) -> tuple[int, int]:
        """(ready messages, dead-lettered messages) of the heartbeat queue (a
        message is one heartbeat or one of ingest's batches)."""
        t = self.topology
        connection = await connect(self.cp.amqp_url)
        try:
            channel = await connection.channel()
            q = await channel.declare_queue(t.heartbeats_queue, passive=True)
            dead = await channel.declare_queue(
                t.dead_queue(t.heartbeats_queue), passive=True
            )
            return (
                int(q.declaration_result.message_count or 0),
                int(dead.declaration_result.message_count or 0),
            )
        finally:
            await connection.close()

    async def drained(
        self,
        accepted: int,
        before: float,
        *,
        within: float = 120.0,
        committed_by: Callable[[], Awaitable[float]] | None = None,
    ) -> tuple[bool, str, float]:
        """Wait until the scheduler committed ``accepted`` heartbeats since
        ``before`` and the queue is empty; (ok, reason, committed delta).
        ``committed_by``: the count to read instead of the default scheduler's
        (e.g. the sum of several schedulers')."""
        count = committed_by or self.committed
        deadline = time.monotonic() + within
        while True:
            committed = await count() - before
            ready, dead = await self.depth()
            if dead:
                return False, f"{dead} heartbeats dead-lettered", committed
            if committed >= accepted and ready == 0:
                return True, "", committed
            if time.monotonic() > deadline:
                return (
                    False,
                    f"not drained in {within:.0f}s: committed {committed:.0f} "
                    f"of {accepted} accepted, {ready} ready",
                    committed,
                )
            await asyncio.sleep(0.2)

    async def seqs_match(self, accepted_seq: dict[str, int]) -> tuple[bool, str]:
        """Every device's stored last_seq equals its highest accepted seq."""
        db = await self.db()
        rows = await db.fetch(
            "SELECT id, last_seq FROM devices WHERE tenant = $1 AND id = ANY($2)",
            self.cp.tenant,
            list(accepted_seq),
        )
        stored = {r["id"]: r["last_seq"] for r in rows}
        wrong = [d for d, s in accepted_seq.items() if stored.get(d) != s]
        if wrong:
            d = wrong[0]
            return False, (
                f"{len(wrong)} devices' last_seq differs from the last accepted "
                f"seq (e.g. {d}: stored {stored.get(d)}, accepted {accepted_seq[d]})"
            )
        return True, ""

    def service_pids(self) -> dict[str, int]:
        """The control plane's processes by service name."""
        return {
            "api": self.cp.api.pid,
            "ingest": self.cp.ingest.pid,
            "scheduler": self.cp.scheduler.pid,
        }

    def run_fleet(
        self,
        ingest_url: str,
        devices_file: Path,
        out: Path,
        *,
        interval: float,
        seconds: float,
        apply_delay: float,
        connections: int,
        extra: tuple[str, ...] = (),
    ) -> subprocess.Popen[str]:
        """``fleet.py run`` of ``devices_file`` against ``ingest_url`` (heartbeats
        only), result to ``out``; ``extra``: more of its flags."""
        return self.fleet(
            "run",
            "--ingest",
            ingest_url,
            "--devices-file",
            str(devices_file),
            "--interval",
            str(interval),
            "--duration",
            str(seconds),
            "--apply-delay",
            str(apply_delay),
            "--connections",
            str(connections),
            *extra,
            out=out,
        )

    def fleet(self, *args: str, out: Path) -> subprocess.Popen[str]:
        """Start ``bench/fleet.py`` (the load generator) on the load CPU."""
        proc = subprocess.Popen(
            [sys.executable, str(BENCH / "fleet.py"), *args, "--out", str(out)],
            stdout=subprocess.PIPE,
            text=True,
            env=clean_env(),
        )
        if self.pinned:
            pin(proc.pid, LOAD_CPUS)
        self._generators.append(proc)
        return proc

    async def close(self) -> None:
        # A benchmark that raised leaves its generator running: stop it.
        for proc in self._generators:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        if self._db is not None:
            await self._db.close()
        if self.otlp_sink is not None:
            self.otlp_sink.close()


async def _metric(base_url: str, sample: re.Pattern[str]) -> float:
    """The value of the one ``sample`` line in ``base_url``'s ``/metrics``; 0
    before it first appears."""
    async with httpx.AsyncClient() as client:
        text = (await client.get(f"{base_url}/metrics")).text
    found = sample.search(text)
    return float(found.group(1)) if found else 0.0


def _ppid(pid: int) -> int | None:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("PPid:"):
                return int(line.split()[1])
    return None


def _const(pid: int) -> Any:
    return lambda: [pid]


def _tree(pid: int) -> Any:
    return lambda: tree_pids(pid)


def _later(stack: Stack, first: list[int]) -> Any:
    """PostgreSQL PIDs: those of the start plus any backend opened since."""
    pids = set(first)

    def current() -> list[int]:
        with contextlib.suppress(OSError):
            for entry in Path("/proc").iterdir():
                if entry.name.isdigit() and int(entry.name) not in pids:
                    with contextlib.suppress(OSError):
                        cmd = (entry / "cmdline").read_bytes()
                        name = stack.cp.db_url.rsplit("/", 1)[1].encode()
                        if cmd.startswith(b"postgres: ") and name in cmd:
                            pids.add(int(entry.name))
        return sorted(pids)

    return current


@contextlib.contextmanager
def open_stack(
    server_url: str,
    amqp_url: str,
    *,
    extra_env: dict[str, str] | None = None,
    pin_cpus: bool = True,
) -> Iterator[Stack]:
    """A fresh database and namespace with api, ingest and scheduler running;
    everything is stopped, dropped and deleted afterwards."""
    workdir = Path(tempfile.mkdtemp(prefix="xdp47-bench-"))
    namespace = f"bench_{uuid.uuid4().hex[:10]}"
    sys.stderr.write(f"bench: logs in {workdir}\n")
    env = {
        "XDP47_LOG_LEVEL": "WARNING",
        "XDP47_SCHED_OFFLINE_AFTER": "600",
        "XDP47_SCHED_WAVE_DEADLINE": "3600",
        "XDP47_DB_POOL_MAX": "4",
    } | dict(extra_env or {})
    with fresh_database(server_url, workdir, "xdp47_bench") as db_url:
        group = ProcessGroup(workdir / "logs")
        try:
            cp = start_control_plane(
                group,
                db_url=db_url,
                amqp_url=amqp_url,
                namespace=namespace,
                blob_dir=workdir / "blobs",
                sched_interval=0.5,
                extra_env=env,
            )
            stack = Stack(cp, group, server_url, workdir, pin_enabled=pin_cpus)
            stack.ingests["batched"] = cp.ingest
            stack.urls["batched"] = cp.ingest_url
            for proc in (cp.ingest, cp.scheduler):
                stack._pin(proc.pid)
            yield stack  # the caller closes ``stack`` (its loop owns the connection)
        finally:
            group.stop_all()
            with contextlib.suppress(Exception):
                delete_namespace(amqp_url, namespace)


def read_result(path: Path) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(path.read_text())
    return result
