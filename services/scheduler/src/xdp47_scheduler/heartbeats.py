"""The heartbeat write path: a batch of heartbeats becomes device state at once.

Owns ``devices`` columns that describe what a device reports (status, health,
versions, last apply, metrics, ``last_seq``, ``last_seen``). The batch is reduced
to the newest heartbeat per device, then applied with a single ``UPDATE … FROM
unnest(…)`` guarded by ``incoming.seq > devices.last_seq``: an older or repeated
heartbeat has no effect, so redelivery is harmless. Devices are created by the
claim (api), never here; heartbeats for unknown devices are ignored and counted.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple, Protocol, TypeAlias
from uuid import UUID

import asyncpg
from asyncpg.pool import PoolConnectionProxy
from pydantic_core import to_json

from xdp47_common.messages import Heartbeat

__all__ = [
    "Beat",
    "Connection",
    "DeviceHeartbeatState",
    "HeartbeatWriteResult",
    "TenantHeartbeat",
    "dedupe_heartbeats",
    "mark_offline",
    "write_heartbeats",
]


# A bare connection or one borrowed from a pool.
Connection: TypeAlias = "asyncpg.Connection[Any] | PoolConnectionProxy[Any]"


@dataclass(frozen=True)
class DeviceHeartbeatState:
    """A device whose state a batch changed: its state after the write."""

    tenant: str
    device_id: str
    seq: int
    previous_status: str
    health: str
    current_version: str | None
    current_artifact_id: UUID | None
    last_apply: dict[str, Any] | None
    last_seen: datetime
    desired_artifact_id: UUID | None
    desired_rollout_id: UUID | None


@dataclass(frozen=True)
class HeartbeatWriteResult:
    """What one batch did: the changed devices, and what it ignored and why."""

    changed: tuple[DeviceHeartbeatState, ...]
    unknown: int  # no such (tenant, device)
    stale: int  # seq not newer than the stored one (late or redelivered)
    superseded: int  # a newer heartbeat of the same device was in the batch


# One statement. The outer SELECT reads ``devices`` in the snapshot taken before
# the UPDATE (data-modifying CTEs do not see each other's effects), which gives
# both "did the device exist" and its status before this write.
_UPSERT = """
WITH incoming AS (
    SELECT * FROM unnest(
        $1::text[], $2::text[], $3::bigint[], $4::text[], $5::text[], $6::uuid[],
        $7::text[], $8::text[], $9::timestamptz[]
    ) AS i(tenant, device_id, seq, health, current_version, current_artifact_id,
           last_apply, last_metrics, received_at)
), updated AS (
    UPDATE devices AS d SET
        status = 'online',
        health = i.health,
        current_version = i.current_version,
        current_artifact_id = i.current_artifact_id,
        last_apply = i.last_apply::jsonb,
        last_metrics = i.last_metrics::jsonb,
        last_seq = i.seq,
        last_seen = i.received_at,
        updated_at = now()
    FROM incoming AS i
    WHERE d.tenant = i.tenant AND d.id = i.device_id AND i.seq > d.last_seq
    RETURNING d.tenant, d.id, d.last_seq, d.health, d.current_version,
              d.current_artifact_id, d.last_apply::text AS last_apply, d.last_seen,
              d.desired_artifact_id, d.desired_rollout_id
)
SELECT i.tenant, i.device_id, old.status AS previous_status,
       (old.id IS NOT NULL) AS known, (u.id IS NOT NULL) AS changed,
       u.last_seq, u.health, u.current_version, u.current_artifact_id,
       u.last_apply, u.last_seen, u.desired_artifact_id, u.desired_rollout_id
FROM incoming AS i
LEFT JOIN devices AS old ON old.tenant = i.tenant AND old.id = i.device_id
LEFT JOIN updated AS u ON u.tenant = i.tenant AND u.id = i.device_id
"""

_MARK_OFFLINE = """
UPDATE devices SET status = 'offline', updated_at = now()
WHERE status = 'online' AND last_seen < $1
"""


class TenantHeartbeat(Protocol):
    """A heartbeat and its tenant: a ``HeartbeatReceived``, or a ``Beat`` (what a
    ``HeartbeatBatch`` is flattened into, without building an envelope each)."""

    @property
    def tenant(self) -> str: ...
    @property
    def heartbeat(self) -> Heartbeat: ...


class Beat(NamedTuple):
    tenant: str
    heartbeat: Heartbeat


def dedupe_heartbeats(
    batch: Sequence[TenantHeartbeat],
) -> dict[tuple[str, str], TenantHeartbeat]:
    """Keep the highest ``seq`` per (tenant, device); the first one on a tie."""
    newest: dict[tuple[str, str], TenantHeartbeat] = {}
    for message in batch:
        key = (message.tenant, message.heartbeat.device_id)
        kept = newest.get(key)
        if kept is None or message.heartbeat.seq > kept.heartbeat.seq:
            newest[key] = message
    return newest


def _json(value: Any) -> str | None:
    # pydantic-core's serializer: several times json.dumps' speed on this path.
    return None if value is None else to_json(value).decode()


def _last_apply_json(beat: Heartbeat) -> str | None:
    return None if beat.last_apply is None else beat.last_apply.model_dump_json()


async def write_heartbeats(
    conn: Connection, batch: Sequence[TenantHeartbeat]
) -> HeartbeatWriteResult:
    """Apply a batch of heartbeats to ``devices``; call inside a transaction.

    Returns:
        The devices that changed, with their new state, so the rollout engine can
        update rollout targets in the same transaction; and the ignored counts.
    """
    newest = dedupe_heartbeats(batch)
    superseded = len(batch) - len(newest)
    if not newest:
        return HeartbeatWriteResult(changed=(), unknown=0, stale=0, superseded=0)
    # Key order makes concurrent batches tend to lock rows in the same order;
    # a deadlock that still happens is retried by the consumer as transient.
    keys = sorted(newest)
    beats = [newest[key].heartbeat for key in keys]
    rows = await conn.fetch(
        _UPSERT,
        [tenant for tenant, _ in keys],
        [device for _, device in keys],
        [b.seq for b in beats],
        [b.health.value for b in beats],
        [b.current_version for b in beats],
        [b.current_artifact_id for b in beats],
        [_last_apply_json(b) for b in beats],
        [_json(b.metrics) for b in beats],
        [b.received_at for b in beats],
    )
    changed: list[DeviceHeartbeatState] = []
    unknown = stale = 0
    for row in rows:
        if not row["known"]:
            unknown += 1
        elif not row["changed"]:
            stale += 1
        else:
            changed.append(
                DeviceHeartbeatState(
                    tenant=row["tenant"],
                    device_id=row["device_id"],
                    seq=row["last_seq"],
                    previous_status=row["previous_status"],
                    health=row["health"],
                    current_version=row["current_version"],
                    current_artifact_id=row["current_artifact_id"],
                    last_apply=json.loads(row["last_apply"])
                    if row["last_apply"] is not None
                    else None,
                    last_seen=row["last_seen"],
                    desired_artifact_id=row["desired_artifact_id"],
                    desired_rollout_id=row["desired_rollout_id"],
                )
            )
    return HeartbeatWriteResult(
        changed=tuple(changed), unknown=unknown, stale=stale, superseded=superseded
    )


async def mark_offline(conn: Connection, older_than: datetime) -> int:
    """Mark online devices silent since before ``older_than`` offline.

    Returns:
        How many devices went offline.
    """
    status = await conn.execute(_MARK_OFFLINE, older_than)
    return int(status.rsplit(" ", 1)[1])
