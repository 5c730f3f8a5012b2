"""Devices: list and read (with the desired state derived by the shared definition,
``xdp47_common.adapters.desired``, and its version joined from artifacts), and the
claim upsert that issues a device credential."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import asyncpg

from xdp47_api.acting import audit_entry
from xdp47_api.pagination import Page, decode_cursor
from xdp47_api.repositories._paging import page_of
from xdp47_api.repositories._trail import record, writing
from xdp47_common.adapters import selector_sql
from xdp47_common.adapters.desired import (
    DESIRED_ARTIFACT,
    DESIRED_JOIN,
    DESIRED_ROLLOUT,
)
from xdp47_common.models import (
    Device,
    DeviceDetail,
    DeviceSort,
    DeviceStatus,
    RecentHeartbeat,
    TargetHistoryEntry,
    describe_reason,
)
from xdp47_common.selectors import SelectorJson
from xdp47_common.tokens import hash_secret
from xdp47_common.web.device_auth import DeviceIdentity, is_device_credential

__all__ = ["HISTORY_LIMIT", "DeviceFilter", "PgDeviceRepository"]

IDENTIFY_DEVICE = "SELECT tenant, id FROM devices WHERE credential_hash = $1"

# The device page shows this many rollout history entries, newest first.
HISTORY_LIMIT = 100


def _select(extra: str = "") -> str:
    return f"""
SELECT d.id, d.tenant, d.labels, d.properties, d.channel, d.status, d.health,
       d.current_version,
       d.current_artifact_id, {DESIRED_ARTIFACT} AS desired_artifact_id,
       a.version AS desired_version, {DESIRED_ROLLOUT} AS desired_rollout_id,
       d.last_apply, d.last_seq, d.last_seen, d.last_metrics, d.claimed_at,
       d.timezone{extra}
FROM devices d
{DESIRED_JOIN}
LEFT JOIN artifacts a ON a.tenant = d.tenant AND a.id = {DESIRED_ARTIFACT}
"""  # nosec B608


_SELECT = _select()
GET_DEVICE = _SELECT + "WHERE d.tenant = $1 AND d.id = $2"
GET_DEVICE_DETAIL = (
    _select(", d.recent_heartbeats") + "WHERE d.tenant = $1 AND d.id = $2"
)
# Outcomes of every attempt (rollout_target_history), then the current target
# while it is pending or assigned (the partial index of active targets finds it),
# each with the device's failed tries (per-device retries) and, for the current
# target, when its next try may start. The version is the one the target sent
# the device to (a rollback's targets each carry their own).
DEVICE_HISTORY = """
SELECT * FROM (
    SELECT h.rollout_id, r.name AS rollout_name, a.version, h.attempt, h.wave,
           h.state, h.reason, h.reason_detail, h.assigned_at, h.finished_at,
           h.device_attempt, h.attempts, NULL::timestamptz AS retry_after,
           h.recorded_at AS at, h.id AS ord
    FROM rollout_target_history AS h
    JOIN rollouts AS r ON r.id = h.rollout_id AND r.tenant = h.tenant
    LEFT JOIN rollout_targets AS t
        ON t.rollout_id = h.rollout_id AND t.device_id = h.device_id
    LEFT JOIN artifacts AS a ON a.tenant = r.tenant
                            AND a.id = coalesce(t.artifact_id, r.artifact_id)
    WHERE h.tenant = $1 AND h.device_id = $2
    ORDER BY h.id DESC LIMIT $3
) AS done
UNION ALL
SELECT t.rollout_id, r.name, a.version, r.attempt, t.wave, t.state, t.reason,
       t.reason_detail, t.assigned_at, t.finished_at, t.device_attempt,
       t.attempts, t.retry_after,
       coalesce(t.assigned_at, r.started_at, r.created_at), 9223372036854775807
FROM rollout_targets AS t
JOIN rollouts AS r ON r.id = t.rollout_id AND r.tenant = t.tenant
LEFT JOIN artifacts AS a ON a.tenant = r.tenant
                        AND a.id = coalesce(t.artifact_id, r.artifact_id)
WHERE t.tenant = $1 AND t.device_id = $2 AND t.active
  AND t.state IN ('pending', 'assigned')
ORDER BY ord DESC
"""


def _list_devices(sort: DeviceSort) -> str:
    """Keyset paging over (sort key, id): $7/$8 are the last row's key and id."""
    key, cast, desc = _SORT_KEYS[sort]
    after = (
        f"({key} < $7::text::{cast} OR ({key} = $7::text::{cast} AND d.id > $8))"
        if desc
        else f"({key}, d.id) > ($7::text::{cast}, $8)"
    )
    return (
        _select(f", ({key})::text AS sort_key")
        + f"""
WHERE d.tenant = $1
  AND {selector_sql.matches("$2")}
  AND ($3::text IS NULL OR d.status = $3)
  AND ($4::text IS NULL OR d.current_version = $4)
  AND ($5::text IS NULL OR d.channel = $5)
  AND ($6::text IS NULL OR starts_with(d.id, $6))
  AND ($8::text IS NULL OR {after})
  AND ($10::uuid IS NULL OR {selector_sql.in_group("$10")})
ORDER BY {key} {"DESC" if desc else ""}, d.id LIMIT $9
"""  # nosec B608
    )


# sort -> (key expression, its type, descending). Never-seen devices and
# devices without a version sort last (newest first) or first (ascending).
_SORT_KEYS: dict[DeviceSort, tuple[str, str, bool]] = {
    DeviceSort.ID: ("d.id", "text", False),
    DeviceSort.LAST_SEEN: (
        "coalesce(d.last_seen, '-infinity'::timestamptz)",
        "timestamptz",
        True,
    ),
    DeviceSort.VERSION: ("coalesce(d.current_version, '')", "text", False),
    DeviceSort.STATUS: ("d.status", "text", False),
}
LIST_DEVICES = {sort: _list_devices(sort) for sort in DeviceSort}
CLAIM_DEVICE = """
INSERT INTO devices (tenant, id, labels, channel, credential_hash, properties,
                     timezone)
VALUES ($1, $2, $3, $4, $5, $6, $7)
ON CONFLICT (tenant, id) DO UPDATE
SET labels = EXCLUDED.labels, channel = EXCLUDED.channel,
    properties = EXCLUDED.properties, timezone = EXCLUDED.timezone,
    credential_hash = EXCLUDED.credential_hash, updated_at = now()
RETURNING (xmax = 0) AS inserted
"""


@dataclass(frozen=True)
class DeviceFilter:
    # Either JSON form of a selector (``xdp47_common.selectors``).
    labels: SelectorJson = field(default_factory=dict)
    status: DeviceStatus | None = None
    version: str | None = None
    channel: str | None = None
    id_prefix: str | None = None
    # Members of this device group only (static or dynamic).
    group_id: UUID | None = None


def _device(row: asyncpg.Record) -> Device:
    return Device.model_validate(dict(row))


def _history_entry(row: asyncpg.Record) -> TargetHistoryEntry:
    return TargetHistoryEntry.model_validate(
        {**dict(row), "reason_text": describe_reason(row["reason"])}
    )


class PgDeviceRepository:
    def __init__(self, pool: asyncpg.Pool[Any]) -> None:
        self._pool = pool

    async def get(self, tenant: str, device_id: str) -> Device | None:
        row = await self._pool.fetchrow(GET_DEVICE, tenant, device_id)
        return None if row is None else _device(row)

    async def detail(self, tenant: str, device_id: str) -> DeviceDetail | None:
        """The device with its recent heartbeats and rollout history."""
        async with self._pool.acquire() as conn, conn.transaction(readonly=True):
            row = await conn.fetchrow(GET_DEVICE_DETAIL, tenant, device_id)
            if row is None:
                return None
            history = await conn.fetch(DEVICE_HISTORY, tenant, device_id, HISTORY_LIMIT)
        data = dict(row)
        beats = data.pop("recent_heartbeats") or []
        detail = DeviceDetail.model_validate(data)
        code = detail.last_apply.code if detail.last_apply else None
        return detail.model_copy(
            update={
                "last_apply_text": describe_reason(code),
                "recent_heartbeats": [RecentHeartbeat.model_validate(b) for b in beats],
                "rollout_history": [_history_entry(r) for r in history],
            }
        )

    async def list(
        self,
        tenant: str,
        filt: DeviceFilter,
        *,
        limit: int,
        cursor: str | None,
        sort: DeviceSort = DeviceSort.ID,
    ) -> Page[Device]:
        key: str | None = None
        after: str | None = None
        if cursor is not None:
            key, after = (str(v) for v in decode_cursor(cursor, 2))
        rows = await self._pool.fetch(
            LIST_DEVICES[sort],
            tenant,
            json.dumps(filt.labels),
            filt.status.value if filt.status else None,
            filt.version,
            filt.channel,
            filt.id_prefix,
            key,
            after,
            limit + 1,
            filt.group_id,
        )
        keys = {r["id"]: r["sort_key"] for r in rows}
        return page_of([_device(r) for r in rows], limit, lambda d: (keys[d.id], d.id))

    async def claim(
        self,
        tenant: str,
        device_id: str,
        labels: dict[str, str],
        channel: str,
        credential_hash: bytes,
        properties: dict[str, str] | None = None,
        timezone: str | None = None,
    ) -> bool:
        """Create or re-claim a device, rotating its credential.

        Returns:
            True when the device is new, False when it was claimed before.
        """
        async with writing(self._pool) as conn:
            inserted = bool(
                await conn.fetchval(
                    CLAIM_DEVICE,
                    tenant,
                    device_id,
                    labels,
                    channel,
                    credential_hash,
                    properties or {},
                    timezone,
                )
            )
            # Claims are the trail's most frequent entry: one short row each.
            await record(
                conn,
                audit_entry(
                    tenant,
                    "device.claimed" if inserted else "device.reclaimed",
                    "device",
                    device_id,
                    detail={"channel": channel, "labels": labels},
                ),
            )
        return inserted

    async def identify(self, credential: str) -> DeviceIdentity | None:
        """The device holding ``credential``; ``None`` when it is malformed,
        unknown or rotated. A malformed credential costs no query."""
        if not is_device_credential(credential):
            return None
        row = await self._pool.fetchrow(IDENTIFY_DEVICE, hash_secret(credential))
        if row is None:
            return None
        return DeviceIdentity(tenant=row["tenant"], device_id=row["id"])
