"""Ingest's PostgreSQL adapter: the one module of ingest that speaks asyncpg.

The device read (identity and desired state in one indexed query), the cache's
LISTEN connection and the start-up check open their connections here.

``devices.credential_hash`` is unique (indexed); what the device should run is
derived in the same query by the shared definition
(``xdp47_common.adapters.desired``: its active target by the partial unique index
and that target's rollout), and the artifact join uses the artifacts primary key.
One round trip of four index probes. The result authenticates the device (which
tenant and device the credential belongs to) and answers it (what it should run),
so a wave is visible to its devices with the commit that starts it.

The ``uri`` of an uploaded artifact (``content_stored``) is the api's download
URL; with the S3 store, ingest answers a presigned URL of the bucket (or the
operator's CDN) instead (``ArtifactLinks``), so the bytes never pass through a
control-plane process. The SHA256 and signature still come from the database.
"""

from __future__ import annotations

import json
from typing import Any, TypeAlias

import asyncpg

from xdp47_common.adapters.desired import (
    DESIRED_ARTIFACT,
    DESIRED_ATTEMPT,
    DESIRED_DEVICE_ATTEMPT,
    DESIRED_JOIN,
    DESIRED_RETRY_AFTER,
    DESIRED_ROLLBACK,
    DESIRED_ROLLOUT,
    DESIRED_WINDOW_OPENS,
)
from xdp47_common.adapters.objects import ArtifactLinks
from xdp47_common.messages import DesiredState
from xdp47_ingest.desired import DeviceView
from xdp47_ingest.notices import WaveChange

__all__ = [
    "READ_DEVICE",
    "Pool",
    "connect",
    "desired_of",
    "read_device",
    "wave_credentials",
]

Pool: TypeAlias = "asyncpg.Pool[Any]"
Connection: TypeAlias = "asyncpg.Connection[Any]"

READ_DEVICE = f"""
SELECT d.tenant, d.id, d.current_artifact_id,
       {DESIRED_ARTIFACT} AS desired_artifact_id,
       {DESIRED_ROLLOUT} AS desired_rollout_id,
       {DESIRED_ATTEMPT} AS desired_attempt,
       {DESIRED_ROLLBACK} AS desired_rollback,
       {DESIRED_DEVICE_ATTEMPT} AS device_attempt,
       {DESIRED_RETRY_AFTER} AS retry_after,
       {DESIRED_WINDOW_OPENS} AS window_opens_at,
       a.version, a.uri, a.sha256, a.size, a.signature, a.content_stored,
       a.compatible::text AS compatible
FROM devices AS d
{DESIRED_JOIN}
LEFT JOIN artifacts AS a ON a.tenant = d.tenant AND a.id = {DESIRED_ARTIFACT}
WHERE d.credential_hash = $1
"""  # nosec B608


async def connect(db_url: str, *, connect_timeout: float) -> Connection:
    """One connection outside the pool (the cache's listener, the preflight)."""
    return await asyncpg.connect(db_url, timeout=connect_timeout)


async def read_device(
    pool: asyncpg.Pool[Any],
    credential_hash: bytes,
    *,
    db_timeout: float,
    links: ArtifactLinks | None = None,
) -> DeviceView | None:
    """Look a credential up by its hash (``tokens.hash_secret``); ``None`` when no
    device has it (unknown or rotated). ``links``: the S3 store's (see the
    module docstring); ``None`` for the filesystem store."""
    row = await pool.fetchrow(READ_DEVICE, credential_hash, timeout=db_timeout)
    if row is None:
        return None
    return DeviceView.of(row["tenant"], row["id"], desired_of(row, links))


# The credentials of a rollout's targets in waves (after, upto]: the devices a
# wave start changes the answer of (migration 0027), or only its late targets
# there (a late joiner of the running wave, ``xdp47_scheduler.pg.late``). The
# index on (rollout_id, wave, state) finds them; one devices probe each.
_WAVE_CREDENTIALS = """
SELECT d.credential_hash FROM rollout_targets AS t
JOIN devices AS d ON d.tenant = t.tenant AND d.id = t.device_id
WHERE t.rollout_id = $1 AND t.wave > $2 AND t.wave <= $3
  AND (t.late OR NOT $4::boolean)
  AND d.credential_hash IS NOT NULL
"""


async def wave_credentials(
    pool: asyncpg.Pool[Any], change: WaveChange, *, db_timeout: float
) -> list[bytes]:
    """The credential hashes of the targets ``change`` names."""
    rows = await pool.fetch(
        _WAVE_CREDENTIALS,
        change.rollout,
        change.after,
        change.upto,
        change.late_only,
        timeout=db_timeout,
    )
    return [bytes(r[0]) for r in rows]


def desired_of(row: asyncpg.Record, links: ArtifactLinks | None = None) -> DesiredState:
    """The device's answer from a ``READ_DEVICE`` row."""
    if row["desired_artifact_id"] is None or row["uri"] is None:
        return DesiredState(
            action="none", device_id=row["id"], window_opens_at=row["window_opens_at"]
        )
    # "update" only when the device is not known to run it already; the agent
    # compares with what it applied anyway, so a lagging current_artifact_id is safe.
    done = row["current_artifact_id"] == row["desired_artifact_id"]
    return DesiredState(
        action="none" if done else "update",
        device_id=row["id"],
        artifact_id=row["desired_artifact_id"],
        version=row["version"],
        uri=(
            links.url_for(row["sha256"])
            if links is not None and row["content_stored"]
            else row["uri"]
        ),
        sha256=row["sha256"],
        size=row["size"],
        signature=row["signature"],
        rollout_id=row["desired_rollout_id"],
        attempt=row["desired_attempt"],
        rollback=bool(row["desired_rollback"]),
        device_attempt=row["device_attempt"],
        retry_after=row["retry_after"],
        window_opens_at=row["window_opens_at"],
        compatible=json.loads(row["compatible"]) if row["compatible"] else None,
    )
