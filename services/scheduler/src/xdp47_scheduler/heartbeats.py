"""The heartbeat write path: a batch of heartbeats becomes device state at once.

Owns ``devices`` columns that describe what a device reports (status, health,
versions, last apply, metrics, ``last_seq``, ``last_seen``). The batch is reduced
to the newest heartbeat per device, then applied with a single ``UPDATE … FROM
unnest(…)`` (``_APPLY``) guarded by the device's stored ``last_seq``: an older or
repeated heartbeat has no effect, so redelivery is harmless. Devices are created by the
claim (api), never here; heartbeats for unknown devices are ignored and counted.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple, TypeAlias
from uuid import UUID

import asyncpg
from asyncpg.pool import PoolConnectionProxy
from pydantic_core import to_json

from xdp47_common.messages import Heartbeat, HeartbeatBatch

__all__ = [
    "RECENT_HEARTBEATS",
    "Connection",
    "DeviceHeartbeatState",
    "HeartbeatWriteResult",
    "dedupe_heartbeats",
    "mark_offline",
    "write_heartbeats",
]


# How many of a device's latest heartbeats ``devices.recent_heartbeats`` keeps.
# Measured on a busy 2-core machine (1,000-heartbeat batches, six metrics each,
# best of 100): the ring adds ~45-75 % to this statement's time with 5 entries
# and ~70-140 % with 10, whose ~1.5 kB array is compressed on every write; 5
# stays inline and uncompressed (docs/performance.md).
RECENT_HEARTBEATS = 5

# A bare connection or one borrowed from a pool.
Connection: TypeAlias = "asyncpg.Connection[Any] | PoolConnectionProxy[Any]"


class DeviceHeartbeatState(NamedTuple):
    """A device whose row a batch changed. What the rollout engine needs; the
    rest of the device's state is read by the statements that need it
    (``progress.settle_devices``). A named tuple: one is made per heartbeat,
    at a third of a frozen dataclass's cost."""

    tenant: str
    device_id: str
    last_seen: datetime
    # The rollout of its active target, in any state (None: no running rollout
    # holds the device), and that target's state, wave and analysed window: the
    # telemetry analysis aggregates only such devices, and decides their cohort
    # from the target.
    rollout_id: UUID | None = None
    state: str | None = None
    wave: int | None = None
    analysed_window: int | None = None

    @property
    def assigned(self) -> bool:
        """Its active rollout target waits for its report: only such devices
        can move a target (``progress.settle_devices``)."""
        return self.state == "assigned"


@dataclass(frozen=True)
class HeartbeatWriteResult:
    """What one batch did: the changed devices, and what it ignored and why."""

    changed: tuple[DeviceHeartbeatState, ...]
    unknown: int  # no such (tenant, device)
    stale: int  # seq not newer than the stored one (late or redelivered)
    superseded: int  # a newer heartbeat of the same device was in the batch
    # The heartbeat written for each (tenant, device) of the batch.
    beats: Mapping[tuple[str, str], Heartbeat] = field(default_factory=dict)


# One UPDATE … FROM, the hottest statement of the system. ``target`` probes the
# partial unique index of active targets once per device (at most one row: the
# index is unique), so the rollout engine settles only devices whose target waits
# for them (``state = 'assigned'``; most heartbeats have none, and the settling
# statement costs PostgreSQL ~0.4 ms per call before any row), and the telemetry
# analysis has each device's rollout, target state, wave and analysed window
# without probing the index again (it does only for an assigned target, which
# the settling may move). A
# CTE-shaped statement that also told unknown from stale devices cost PostgreSQL
# twice as much per heartbeat (two more joins over a materialized copy of the
# batch; docs/performance.md).
#
# ``recent_heartbeats`` keeps the last ``RECENT_HEARTBEATS`` heartbeats (seq, time,
# health, metrics; newest first) for the device page, in this same statement: a
# ``json[]`` with the new entry prepended and sliced to the size. The entry comes
# as JSON text made by the scheduler (``_ring_entry``) and is stored as written;
# the metrics come beside it for ``last_metrics`` (jsonb: parsed once). Against a
# jsonb array rebuilt per row, measured on the statement alone (2,000 rows,
# batches of 400): PostgreSQL ~16.5 → ~7.3 µs per row (migration 0028).
#
# The batch comes as one array of ``heartbeat_row`` (migration 0029), a tuple
# per heartbeat: asyncpg checks each element of an array parameter for being a
# nested array, against abstract base classes, and ten parallel arrays paid
# that per field (3.6 → 2.2 µs of the scheduler's CPU per heartbeat).
_APPLY = f"""
UPDATE devices AS d SET
    status = 'online',
    health = i.health,
    current_version = i.current_version,
    current_artifact_id = i.current_artifact_id,
    last_apply = i.last_apply::jsonb,
    last_metrics = i.metrics::jsonb,
    recent_heartbeats = (i.recent::json || d.recent_heartbeats)[1:{RECENT_HEARTBEATS}],
    last_seq = i.seq,
    last_seen = i.received_at,
    updated_at = now()
FROM unnest($1::heartbeat_row[]) AS i
WHERE d.tenant = i.tenant AND d.id = i.device_id AND i.seq > d.last_seq
RETURNING d.tenant, d.id, d.last_seen,
    (
        SELECT row(t.rollout_id, t.state, t.wave, t.analysed_window)
        FROM rollout_targets AS t
        WHERE t.tenant = d.tenant AND t.device_id = d.id AND t.active
    ) AS target
"""  # nosec B608 (a constant, not input)

# Only when a batch changed fewer devices than it named: which of the others exist.
_EXISTING = """
SELECT count(*) FROM devices AS d
JOIN unnest($1::text[], $2::text[]) AS k(tenant, id)
  ON d.tenant = k.tenant AND d.id = k.id
"""

_MARK_OFFLINE = """
UPDATE devices SET status = 'offline', updated_at = now()
WHERE status = 'online' AND last_seen < $1
"""


def dedupe_heartbeats(
    batch: Sequence[HeartbeatBatch],
) -> dict[tuple[str, str], Heartbeat]:
    """Keep the highest ``seq`` per (tenant, device); the first one on a tie."""
    newest: dict[tuple[str, str], Heartbeat] = {}
    for message in batch:
        tenant = message.tenant
        for beat in message.heartbeats:
            key = (tenant, beat.device_id)
            kept = newest.get(key)
            if kept is None or beat.seq > kept.seq:
                newest[key] = beat
    return newest


def _row(key: tuple[str, str], beat: Heartbeat) -> tuple[Any, ...]:
    """The ``heartbeat_row`` of ``beat`` (migration 0029). Its metrics are
    serialized once, as JSON for ``last_metrics`` and inside its
    ``recent_heartbeats`` entry (pydantic-core's serializer: several times
    json.dumps' speed on this path)."""
    metrics = to_json(beat.metrics)
    health = beat.health.value
    head = to_json({"seq": beat.seq, "at": beat.received_at, "health": health})
    return (
        *key,
        beat.seq,
        health,
        beat.current_version,
        beat.current_artifact_id,
        None if beat.last_apply is None else beat.last_apply.model_dump_json(),
        metrics.decode(),
        b"".join((head[:-1], b',"metrics":', metrics, b"}")).decode(),
        beat.received_at,
    )


async def write_heartbeats(
    conn: Connection, batch: Sequence[HeartbeatBatch]
) -> HeartbeatWriteResult:
    """Apply a batch of heartbeats to ``devices``; call inside a transaction.

    Returns:
        The devices that changed, with their new state, so the rollout engine can
        update rollout targets in the same transaction; and the ignored counts.
    """
    newest = dedupe_heartbeats(batch)
    superseded = sum(len(m.heartbeats) for m in batch) - len(newest)
    if not newest:
        return HeartbeatWriteResult(changed=(), unknown=0, stale=0, superseded=0)
    # Key order makes concurrent batches tend to lock rows in the same order;
    # a deadlock that still happens is retried by the consumer as transient.
    keys = sorted(newest)
    rows = await conn.fetch(_APPLY, [_row(key, newest[key]) for key in keys])
    changed = tuple(_state(row) for row in rows)
    unknown = stale = 0
    if len(changed) < len(keys):
        done = {(c.tenant, c.device_id) for c in changed}
        rest = [key for key in keys if key not in done]
        stale = await conn.fetchval(
            _EXISTING, [t for t, _ in rest], [d for _, d in rest]
        )
        unknown = len(rest) - stale
    return HeartbeatWriteResult(
        changed=changed,
        unknown=unknown,
        stale=stale,
        superseded=superseded,
        beats=newest,
    )


def _state(row: Any) -> DeviceHeartbeatState:
    target = row["target"]
    if target is None:
        return DeviceHeartbeatState(row["tenant"], row["id"], row["last_seen"])
    return DeviceHeartbeatState(row["tenant"], row["id"], row["last_seen"], *target)


async def mark_offline(conn: Connection, older_than: datetime) -> int:
    """Mark online devices silent since before ``older_than`` offline.

    Returns:
        How many devices went offline.
    """
    status = await conn.execute(_MARK_OFFLINE, older_than)
    return int(status.rsplit(" ", 1)[1])
