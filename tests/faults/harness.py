"""The stack a fault scenario runs on, the rollout it drives, and its figures.

A stack is api + ingest + scheduler as processes (``start_control_plane``) on a
fresh database of the suite's own PostgreSQL and a namespace on the suite's own
RabbitMQ node, so that a scenario may crash either. ``drive_rollout`` claims a
simulated fleet, rolls a release out to it while a scenario's ``fault`` coroutine
does its damage, and returns the ``Outcome`` the figure line is made of.
Database reads retry while PostgreSQL is down: the test must outlive the outage.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import uuid
from collections.abc import (
    Awaitable,
    Callable,
    Coroutine,
    Iterator,
    Mapping,
    Sequence,
)
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aio_pika
import asyncpg
import httpx

from tests.faults.sim import SimFleet
from tests.support.brokers import OwnPostgres, OwnRabbit, OwnRabbitCluster
from tests.support.control_plane import (
    ControlPlane,
    fresh_database,
    start_control_plane,
)
from tests.support.figures import record
from tests.support.processes import ProcessGroup
from xdp47_common.adapters.amqp import connect
from xdp47_common.topology import Topology

__all__ = [
    "FLEET_SIZE",
    "Outcome",
    "Stack",
    "drive_rollout",
    "fetch",
    "figure",
    "final_state",
    "open_stack",
    "queues_drained",
    "wait_for",
]

FLEET_SIZE = 500
WAVES = 3
# Gates that a 2 % failing fleet passes in every wave, whatever the waves' mix:
# the rollout ends ``partial`` (some devices failed) in an undisturbed run.
POLICY = {
    "require_ok": True,
    "skip_offline": False,
    "grace_seconds": 0,
    "min_success_ratio": 0.9,
    "max_failures_per_wave": 10,
    "wave_deadline_seconds": 600,
    # The simulated devices give an artifact up after one failed apply and never
    # try it again: a per-device retry would wait for the deadline instead.
    "max_device_retries": 0,
}
# Small intervals so a scenario takes seconds; a long offline timeout so a broker
# outage does not make the fleet "offline" (scenario 6 sets its own).
BASE_ENV = {
    "XDP47_SCHED_INTERVAL": "0.3",
    "XDP47_SCHED_OFFLINE_AFTER": "120",
    "XDP47_PUBLISH_TIMEOUT": "2",
    "XDP47_INGEST_RETRY_AFTER": "1",
    "XDP47_DB_POOL_MAX": "8",
}
TERMINAL = ("completed", "partial", "failed", "aborted")


# The figure lines of this run, printed at its end by the suite's conftest.
def figure(line: str) -> None:
    """Record (and print, visible with ``-s``) a scenario's figure line, shown
    in the run's summary under "fault figures"."""
    record("fault figures", line)


@dataclass
class Stack:
    plane: ControlPlane
    group: ProcessGroup
    rabbit: OwnRabbit | OwnRabbitCluster
    pg: OwnPostgres
    log_dir: Path

    @property
    def db_url(self) -> str:
        return self.plane.db_url

    @property
    def topology(self) -> Topology:
        return Topology(self.plane.namespace)


@contextlib.contextmanager
def open_stack(
    pg: OwnPostgres,
    rabbit: OwnRabbit | OwnRabbitCluster,
    root: Path,
    *,
    extra_env: Mapping[str, str] | None = None,
    db_url: str | None = None,
    scheduler_command: str | Sequence[str] = "xdp47-scheduler",
) -> Iterator[Stack]:
    """A fresh database and namespace with api, ingest and scheduler on them
    (or the migrated database ``db_url``, which the caller owns);
    ``scheduler_command``: another scheduler entry point (fault injection)."""
    log_dir = root / "logs"
    with contextlib.ExitStack() as stack:
        if db_url is None:
            db_url = stack.enter_context(fresh_database(pg.url, log_dir, "xdp47_fault"))
        group = stack.enter_context(ProcessGroup(log_dir))
        plane = start_control_plane(
            group,
            db_url=db_url,
            amqp_url=rabbit.amqp_url,
            namespace=f"f{uuid.uuid4().hex[:8]}",
            blob_dir=root / "blobs",
            sched_interval=float(BASE_ENV["XDP47_SCHED_INTERVAL"]),
            extra_env=BASE_ENV | dict(extra_env or {}),
            scheduler_command=scheduler_command,
        )
        yield Stack(plane, group, rabbit, pg, log_dir)


async def fetch(db_url: str, sql: str, *args: Any, within: float = 90) -> list[Any]:
    """Rows of ``sql``; retried while the database is unreachable."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        try:
            conn = await asyncpg.connect(db_url, timeout=3)
            try:
                return list(await conn.fetch(sql, *args))
            finally:
                await conn.close()
        except (
            OSError,
            asyncpg.PostgresError,
            asyncpg.InterfaceError,
            # "cannot switch to state …": the server died under the connection
            asyncpg.InternalClientError,
        ):
            if loop.time() > deadline:
                raise
            await asyncio.sleep(0.3)


async def wait_for(
    check: Callable[[], Awaitable[bool]], *, within: float, every: float = 0.3
) -> None:
    """Poll the async predicate until it holds; fail after ``within`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not await check():
        if loop.time() > deadline:
            raise AssertionError(f"not reached within {within}s: {check.__name__}")
        await asyncio.sleep(every)


async def rollout_status(db_url: str, rollout_id: str) -> tuple[str, int | None]:
    rows = await fetch(
        db_url,
        "SELECT status, current_wave FROM rollouts WHERE id = $1::text::uuid",
        rollout_id,
    )
    return rows[0]["status"], rows[0]["current_wave"]


async def queue_depth(amqp_url: str, queue: str) -> int:
    connection = await connect(amqp_url, connect_timeout=5)
    try:
        channel = await connection.channel()
        declared = await channel.declare_queue(queue, passive=True)
        return int(declared.declaration_result.message_count or 0)
    finally:
        await connection.close()


async def queues_drained(
    amqp_url: str, topology: Topology, *, within: float = 60
) -> bool:
    """Every work queue empty on several reads in a row (a quorum queue reports 0
    for a moment while it recovers after a restart, so one read is not enough)."""
    queues = [q for q, _, _ in topology.work_queues]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    zero_reads = 0
    while loop.time() < deadline:
        try:
            depths = [await queue_depth(amqp_url, q) for q in queues]
        except (OSError, aio_pika.exceptions.AMQPError):
            depths = [-1]
        zero_reads = zero_reads + 1 if depths == [0] * len(queues) else 0
        if zero_reads >= 5:
            return True
        await asyncio.sleep(0.3)
    return False


@dataclass
class Outcome:
    """What a driven rollout left behind (the figure line's numbers)."""

    rollout_id: str
    status: str
    accepted: int
    persisted: int
    missing: int
    double_assign: int
    server_errors: int
    codes: dict[int, int]
    unavailable_without_retry_after: int
    seconds: float  # from the start command to the terminal status
    setup_seconds: float  # claiming the fleet until every device is online
    state: dict[str, Any] = field(default_factory=dict)

    @property
    def digest(self) -> str:
        text = json.dumps(self.state, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:12]


class Operator:
    """The dev token's calls the scenarios need, on an async client."""

    def __init__(self, plane: ControlPlane) -> None:
        self.plane = plane
        self.http = httpx.AsyncClient(
            base_url=plane.api_url, headers=plane.auth, timeout=30
        )

    async def call(self, method: str, path: str, body: Any, code: int) -> Any:
        r = await self.http.request(method, path, json=body)
        assert r.status_code == code, f"{method} {path}: {r.status_code} {r.text}"
        return r.json()

    async def release(self, version: str, content: bytes | None = None) -> str:
        """Register a release the simulated devices "apply" by reporting it; with
        ``content``, upload it, so that real agents can download and apply it."""
        if content is not None:
            r = await self.http.post(
                "/api/artifacts/upload",
                params={"tenant": self.plane.tenant, "version": version},
                content=content,
                headers={"Content-Type": "application/octet-stream"},
            )
            assert r.status_code == 201, r.text
            return str(r.json()["id"])
        body = {
            "tenant": self.plane.tenant,
            "uri": f"https://downloads.invalid/{version}.bin",
            "sha256": hashlib.sha256(version.encode()).hexdigest(),
            "size": 1024,
            "version": version,
        }
        return str((await self.call("POST", "/api/artifacts", body, 201))["id"])

    async def rollout(
        self, artifact_id: str, selector: dict[str, str], waves: int
    ) -> str:
        policy = await self.call(
            "POST",
            "/api/policies",
            {"tenant": self.plane.tenant, "name": f"p{uuid.uuid4().hex[:6]}"} | POLICY,
            201,
        )
        body = {
            "tenant": self.plane.tenant,
            "artifact_id": artifact_id,
            "selector": selector,
            "waves": waves,
            "policy_id": policy["id"],
        }
        rollout = await self.call("POST", "/api/rollouts", body, 201)
        await self.call("POST", f"/api/rollouts/{rollout['id']}:start", None, 202)
        return str(rollout["id"])

    async def close(self) -> None:
        await self.http.aclose()


def new_fleet(
    stack: Stack, *, size: int = FLEET_SIZE, interval: float = 5.0
) -> SimFleet:
    return SimFleet(
        api_url=stack.plane.api_url,
        ingest_url=stack.plane.ingest_url,
        token=stack.plane.token,
        tenant=stack.plane.tenant,
        name=f"s{uuid.uuid4().hex[:6]}",
        size=size,
        interval=interval,
    )


async def all_online(stack: Stack, fleet: SimFleet) -> bool:
    rows = await fetch(
        stack.db_url,
        "SELECT count(*) AS n FROM devices WHERE labels @> $1::text::jsonb "
        "AND status = 'online'",
        json.dumps(fleet.label),
    )
    # at least: real agents of a scenario may share the fleet's label
    return bool(rows[0]["n"] >= len(fleet.devices))


async def final_state(db_url: str, rollout_id: str) -> dict[str, Any]:
    """The rollout's end state, free of ids and times that differ between runs.

    Wave membership hashes the rollout id, so per-wave numbers are compared as
    sizes and outcomes, devices by their own (deterministic) names.
    """
    rollout = await fetch(
        db_url,
        "SELECT status, attempt, current_wave, waves FROM rollouts "
        "WHERE id = $1::text::uuid",
        rollout_id,
    )
    runs = await fetch(
        db_url,
        "SELECT attempt, wave, eligible, succeeded + failed AS decided, skipped, "
        "outcome FROM rollout_runs WHERE rollout_id = $1::text::uuid "
        "ORDER BY attempt, wave",
        rollout_id,
    )
    totals = await fetch(
        db_url,
        "SELECT sum(succeeded) AS succeeded, sum(failed) AS failed "
        "FROM rollout_runs WHERE rollout_id = $1::text::uuid",
        rollout_id,
    )
    targets = await fetch(
        db_url,
        "SELECT t.device_id, t.state, t.reason, t.active, d.current_version, "
        "d.health, d.status, a.version AS desired_version "
        "FROM rollout_targets AS t JOIN devices AS d "
        "ON d.tenant = t.tenant AND d.id = t.device_id "
        "LEFT JOIN artifacts AS a ON a.tenant = d.tenant "
        "AND a.id = d.desired_artifact_id "
        "WHERE t.rollout_id = $1::text::uuid ORDER BY t.device_id",
        rollout_id,
    )
    return {
        "rollout": dict(rollout[0]),
        "runs": [dict(r) for r in runs],
        "totals": dict(totals[0]),
        "devices": {
            r["device_id"].split("-", 1)[1]: [
                r["state"],
                r["reason"],
                r["active"],
                r["current_version"],
                r["health"],
                r["status"],
                r["desired_version"],
            ]
            for r in targets
        },
    }


def diff_states(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    """Readable differences between two ``final_state`` results (first 10)."""
    keys = ("rollout", "runs", "totals")
    out = [f"{k}: {a[k]} != {b[k]}" for k in keys if a[k] != b[k]]
    devices = sorted(set(a["devices"]) | set(b["devices"]))
    out += [
        f"device {d}: {a['devices'].get(d)} != {b['devices'].get(d)}"
        for d in devices
        if a["devices"].get(d) != b["devices"].get(d)
    ]
    return out[:10]


async def missing_acked(db_url: str, fleet: SimFleet) -> tuple[int, int]:
    """(devices whose stored last_seq is below their highest 202'd seq, devices
    whose newest acked heartbeat is stored): every 202 must reach the database.
    ``last_seq`` only moves forward, so ``>=`` covers every older acked one."""
    rows = await fetch(
        db_url,
        "SELECT id, last_seq FROM devices WHERE labels @> $1::text::jsonb",
        json.dumps(fleet.label),
    )
    stored = {r["id"]: r["last_seq"] for r in rows}
    missing = sum(1 for d in fleet.devices if stored.get(d.id, -1) < d.acked_seq)
    return missing, len(fleet.devices) - missing


async def wait_acked_persisted(
    db_url: str, fleet: SimFleet, *, within: float = 60
) -> int:
    """Wait until every acked heartbeat is in the database; the number missing
    after ``within`` seconds (0 when all arrived)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        missing, _ = await missing_acked(db_url, fleet)
        if missing == 0 or loop.time() > deadline:
            return missing
        await asyncio.sleep(0.5)


Fault = Callable[[str], Coroutine[Any, Any, None]]


async def drive_rollout(
    stack: Stack,
    fleet: SimFleet,
    *,
    fault: Fault | None = None,
    waves: int = WAVES,
    within: float = 180,
    release: bytes | None = None,
) -> Outcome:
    """Claim the fleet, roll a release out to it with ``fault(rollout_id)`` running
    beside, and collect the outcome once the rollout is terminal, the fleet
    stopped, every acked heartbeat stored and the work queues drained."""
    operator = Operator(stack.plane)
    loop = asyncio.get_running_loop()
    began = loop.time()
    try:
        await fleet.claim_all()
        fleet.start()
        await wait_for(lambda: all_online(stack, fleet), within=240)
        setup = loop.time() - began
        began = loop.time()
        artifact = await operator.release("2.0.0", release)
        rollout_id = await operator.rollout(artifact, fleet.label, waves)
        damage = asyncio.create_task(fault(rollout_id)) if fault else None

        async def terminal() -> bool:
            if damage is not None and damage.done():
                damage.result()  # a failing fault script fails the test now
            status, _ = await rollout_status(stack.db_url, rollout_id)
            return status in TERMINAL

        await wait_for(terminal, within=within, every=0.5)
        took = loop.time() - began
        if damage is not None:
            await damage
    finally:
        await fleet.stop()
        await operator.close()
    missing = await wait_acked_persisted(stack.db_url, fleet)
    _, persisted = await missing_acked(stack.db_url, fleet)
    status, _ = await rollout_status(stack.db_url, rollout_id)
    return Outcome(
        rollout_id=rollout_id,
        status=status,
        accepted=fleet.accepted,
        persisted=persisted,
        missing=missing,
        double_assign=len(fleet.told_twice()),
        server_errors=fleet.server_errors,
        codes=dict(fleet.codes),
        unavailable_without_retry_after=fleet.unavailable_without_retry_after,
        seconds=round(took, 1),
        setup_seconds=round(setup, 1),
        state=await final_state(stack.db_url, rollout_id),
    )


async def wave_starts(db_url: str, rollout_id: str) -> dict[str, Any]:
    """How the rollout's waves started: runs per (attempt, wave), and the waves
    that started without their predecessor having passed its gate first."""
    runs = await fetch(
        db_url,
        "SELECT attempt, wave, eligible, succeeded, failed, started_at, finished_at, "
        "outcome FROM rollout_runs WHERE rollout_id = $1::text::uuid "
        "ORDER BY attempt, wave",
        rollout_id,
    )
    per_wave: dict[tuple[int, int], int] = {}
    for r in runs:
        key = (r["attempt"], r["wave"])
        per_wave[key] = per_wave.get(key, 0) + 1
    below_gate = []
    by_key = {(r["attempt"], r["wave"]): r for r in runs}
    for (attempt, wave), r in by_key.items():
        before = by_key.get((attempt, wave - 1))
        if wave == 1:
            continue
        passed = (
            before is not None
            and before["outcome"] == "succeeded"
            and before["finished_at"] is not None
            and before["finished_at"] <= r["started_at"]
            and before["failed"] <= POLICY["max_failures_per_wave"]
            and before["succeeded"] >= POLICY["min_success_ratio"] * before["eligible"]
        )
        if not passed:
            below_gate.append(wave)
    return {
        "waves": len(per_wave),
        "max_runs_per_wave": max(per_wave.values(), default=0),
        "below_gate": below_gate,
    }


async def scrape(base_url: str) -> str:
    """The text of a service's ``/metrics``."""
    async with httpx.AsyncClient(timeout=10) as http:
        r = await http.get(f"{base_url}/metrics")
        r.raise_for_status()
        return r.text
