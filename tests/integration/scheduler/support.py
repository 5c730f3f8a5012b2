"""Helpers of the scheduler tests: a fleet in the database, simulated devices that
heartbeat through ingest and apply what they are told, and bounded polling."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import httpx
from tenacity import AsyncRetrying, stop_after_delay, wait_fixed

from xdp47_common.rollout import EffectivePolicy
from xdp47_common.tokens import SecretKind, hash_secret, new_secret


@dataclass
class SimDevice:
    """A device that posts its whole state and reacts to its desired state."""

    tenant: str
    id: str
    credential: str
    seq: int = 0
    current_artifact_id: uuid.UUID | None = None
    health: str = "ok"
    last_apply: dict[str, Any] | None = None
    told: list[uuid.UUID] = field(default_factory=list)  # every "update" answer
    metrics: dict[str, Any] = field(default_factory=dict)

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.credential}"}

    def body(self) -> dict[str, Any]:
        self.seq += 1
        return {
            "seq": self.seq,
            "current_artifact_id": (
                str(self.current_artifact_id) if self.current_artifact_id else None
            ),
            "health": self.health,
            "last_apply": self.last_apply,
            "metrics": self.metrics,
        }

    async def beat(self, client: httpx.AsyncClient) -> dict[str, Any]:
        r = await client.post(
            f"/api/devices/{self.id}/heartbeat", json=self.body(), headers=self.auth
        )
        assert r.status_code == 202, r.text
        desired: dict[str, Any] = r.json()
        if desired["action"] == "update":
            self.told.append(uuid.UUID(desired["artifact_id"]))
        return desired


# What a device does when told to update: mutate its state (or not).
Behaviour = Callable[[SimDevice, uuid.UUID], None]


def applies(device: SimDevice, artifact: uuid.UUID) -> None:
    device.current_artifact_id = artifact
    device.health = "ok"
    device.last_apply = {"artifact_id": str(artifact), "result": "ok"}


def fails(device: SimDevice, artifact: uuid.UUID) -> None:
    device.last_apply = {
        "artifact_id": str(artifact),
        "result": "failed",
        "code": "sha256_mismatch",
        "reason": "sha256 mismatch: got 00ff",
        "at": f"2030-01-01T00:00:{device.seq % 60:02d}Z",
    }


def silent(device: SimDevice, artifact: uuid.UUID) -> None:
    """Told to update, never reports anything new."""


async def step(
    client: httpx.AsyncClient, devices: Iterable[SimDevice], behave: Behaviour
) -> None:
    """One heartbeat per device; devices told to update react with ``behave``."""
    for d in devices:
        desired = await d.beat(client)
        if desired["action"] == "update":
            behave(d, uuid.UUID(desired["artifact_id"]))


@dataclass
class Fleet:
    tenant: str
    artifact_id: uuid.UUID
    devices: list[SimDevice]


async def add_artifact(
    pool: asyncpg.Pool[Any],
    tenant: str,
    *,
    version: str,
    compatible: dict[str, list[str]] | None = None,
) -> uuid.UUID:
    """An artifact of the tenant (no bytes: a URI) declaring ``compatible``."""
    artifact = uuid.uuid4()
    await pool.execute(
        "INSERT INTO artifacts (id, tenant, uri, sha256, version, compatible) "
        "VALUES ($1, $2, 'https://example.com/a', $3, $4, $5::text::jsonb)",
        artifact,
        tenant,
        artifact.hex * 2,
        version,
        json.dumps(compatible or {}),
    )
    return artifact


def gate_policy(**fields: Any) -> EffectivePolicy:
    """Scheduler defaults for a test: every device of a wave must update (no
    failure allowed), offline devices skipped, no grace, an hour's deadline, a
    plan with no device ends completed; ``fields`` change any of them."""
    base: dict[str, Any] = {
        "require_ok": True,
        "skip_offline": True,
        "grace_seconds": 0,
        "min_success_ratio": 1.0,
        "max_failures_per_wave": 0,
        "abort_on_zero_eligible": False,
        "wave_deadline_seconds": 3600,
    }
    return EffectivePolicy(**(base | fields))


async def make_fleet(
    pool: asyncpg.Pool[Any],
    n: int,
    *,
    labels: dict[str, str] | None = None,
    channel: str = "stable",
    status: str = "online",
    tenant: str | None = None,
    prefix: str = "d",
) -> Fleet:
    tenant = tenant or f"s-{uuid.uuid4().hex[:10]}"
    await pool.execute(
        "INSERT INTO tenants (id, name) VALUES ($1, $1) ON CONFLICT DO NOTHING", tenant
    )
    artifact = await add_artifact(pool, tenant, version="2.0")
    devices = await add_devices(
        pool, tenant, n, labels=labels, channel=channel, status=status, prefix=prefix
    )
    return Fleet(tenant, artifact, devices)


async def add_devices(
    pool: asyncpg.Pool[Any],
    tenant: str,
    n: int,
    *,
    labels: dict[str, str] | None = None,
    channel: str = "stable",
    status: str = "online",
    prefix: str = "d",
) -> list[SimDevice]:
    devices = []
    for i in range(n):
        cred = new_secret(SecretKind.DEVICE_CREDENTIAL)
        d = SimDevice(tenant, f"{prefix}{i:03d}-{uuid.uuid4().hex[:6]}", cred)
        await pool.execute(
            "INSERT INTO devices (tenant, id, credential_hash, labels, channel, status,"
            " last_seen) VALUES ($1, $2, $3, $4::text::jsonb, $5, $6, now())",
            tenant,
            d.id,
            hash_secret(cred),
            json.dumps(labels or {}),
            channel,
            status,
        )
        devices.append(d)
    return devices


async def make_policy(pool: asyncpg.Pool[Any], tenant: str, **fields: Any) -> uuid.UUID:
    pid = uuid.uuid4()
    cols = ", ".join(["id", "tenant", "name", *fields])
    marks = ", ".join(f"${i}" for i in range(1, len(fields) + 4))
    await pool.execute(
        f"INSERT INTO policies ({cols}) VALUES ({marks})",
        pid,
        tenant,
        f"p-{pid.hex[:8]}",  # names are unique per tenant
        *fields.values(),
    )
    return pid


async def make_rollout(
    pool: asyncpg.Pool[Any],
    fleet: Fleet,
    *,
    waves: int = 1,
    percentages: Sequence[int] | None = None,
    policy_id: uuid.UUID | None = None,
    selector: dict[str, str] | None = None,
    channel: str = "stable",
) -> uuid.UUID:
    rid = uuid.uuid4()
    await pool.execute(
        "INSERT INTO rollouts (id, tenant, artifact_id, policy_id, selector, channel,"
        " waves, wave_percentages)"
        " VALUES ($1, $2, $3, $4, $5::text::jsonb, $6, $7, $8)",
        rid,
        fleet.tenant,
        fleet.artifact_id,
        policy_id,
        json.dumps(selector or {}),
        channel,
        waves,
        list(percentages) if percentages else None,
    )
    return rid


async def rollout_row(pool: asyncpg.Pool[Any], rid: uuid.UUID) -> asyncpg.Record:
    row: asyncpg.Record | None = await pool.fetchrow(
        "SELECT * FROM rollouts WHERE id = $1", rid
    )
    assert row is not None
    return row


async def runs(pool: asyncpg.Pool[Any], rid: uuid.UUID) -> list[asyncpg.Record]:
    return list(
        await pool.fetch(
            "SELECT * FROM rollout_runs WHERE rollout_id = $1 ORDER BY attempt, wave",
            rid,
        )
    )


async def targets(pool: asyncpg.Pool[Any], rid: uuid.UUID) -> dict[str, asyncpg.Record]:
    rows = await pool.fetch("SELECT * FROM rollout_targets WHERE rollout_id = $1", rid)
    return {r["device_id"]: r for r in rows}


async def drive(
    pool: asyncpg.Pool[Any],
    client: httpx.AsyncClient,
    rid: uuid.UUID,
    devices: Sequence[SimDevice],
    behave: Behaviour,
    *,
    until: Callable[[asyncpg.Record], bool],
    within: float = 30.0,
) -> asyncpg.Record:
    """Heartbeat every device (reacting with ``behave``) until ``until(rollout)``."""
    async for attempt in AsyncRetrying(
        stop=stop_after_delay(within), wait=wait_fixed(0.05), reraise=True
    ):
        with attempt:
            row = await rollout_row(pool, rid)
            if not until(row):
                await step(client, devices, behave)
                raise AssertionError(
                    f"rollout {row['status']} wave {row['current_wave']}: "
                    f"{row['reason']}"
                )
    return row


def status_is(*statuses: str) -> Callable[[asyncpg.Record], bool]:
    return lambda row: row["status"] in statuses


async def wait_for(check: Callable[[], Any], within: float = 15.0) -> Any:
    """Poll an async check (raises AssertionError until it holds)."""
    async for attempt in AsyncRetrying(
        stop=stop_after_delay(within), wait=wait_fixed(0.05), reraise=True
    ):
        with attempt:
            return await check()
    raise AssertionError("unreachable")


async def reported(
    pool: asyncpg.Pool[Any],
    client: httpx.AsyncClient,
    devices: Sequence[SimDevice],
    behave: Behaviour = silent,
) -> None:
    """One more heartbeat each (reacting with ``behave``, by default to
    nothing), until all are written."""
    await step(client, devices, behave)

    async def written() -> None:
        rows = await pool.fetch(
            "SELECT id, last_seq FROM devices WHERE id = ANY($1::text[])",
            [d.id for d in devices],
        )
        assert {r["id"]: r["last_seq"] for r in rows} == {d.id: d.seq for d in devices}

    await wait_for(written)
