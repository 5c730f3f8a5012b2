"""The desired-state read: identity and desired artifact in one indexed query.

``devices.credential_hash`` is unique (indexed) and the artifact join uses the
artifacts primary key, so this is one round trip of two index probes. The result
authenticates the device (which tenant and device the credential belongs to) and
answers it (what it should run). Also owns the strong ETag of a desired state.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import asyncpg

from xdp47_common.messages import DesiredState
from xdp47_common.tokens import hash_secret

__all__ = ["DeviceView", "etag_matches", "etag_of", "read_device"]

_READ = """
SELECT d.tenant, d.id, d.current_artifact_id, d.desired_artifact_id,
       d.desired_rollout_id, a.version, a.uri, a.sha256, a.size, a.signature
FROM devices AS d
LEFT JOIN artifacts AS a ON a.tenant = d.tenant AND a.id = d.desired_artifact_id
WHERE d.credential_hash = $1
"""


@dataclass(frozen=True)
class DeviceView:
    """Who the credential belongs to, and what that device should run."""

    tenant: str
    device_id: str
    desired: DesiredState


async def read_device(
    pool: asyncpg.Pool[Any], credential: str, *, db_timeout: float
) -> DeviceView | None:
    """Look a credential up; ``None`` when no device has it (unknown or rotated)."""
    row = await pool.fetchrow(_READ, hash_secret(credential), timeout=db_timeout)
    if row is None:
        return None
    return DeviceView(tenant=row["tenant"], device_id=row["id"], desired=_desired(row))


def _desired(row: asyncpg.Record) -> DesiredState:
    if row["desired_artifact_id"] is None or row["uri"] is None:
        return DesiredState(action="none")
    # "update" only when the device is not known to run it already; the agent
    # compares with what it applied anyway, so a lagging current_artifact_id is safe.
    done = row["current_artifact_id"] == row["desired_artifact_id"]
    return DesiredState(
        action="none" if done else "update",
        artifact_id=row["desired_artifact_id"],
        version=row["version"],
        uri=row["uri"],
        sha256=row["sha256"],
        size=row["size"],
        signature=row["signature"],
        rollout_id=row["desired_rollout_id"],
    )


def etag_of(body: bytes) -> str:
    """A strong ETag: the same desired state always gives the same tag."""
    return '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    """RFC 9110 If-None-Match: weak comparison over a list, or ``*``."""
    if not if_none_match:
        return False
    for candidate in if_none_match.split(","):
        tag = candidate.strip()
        if tag == "*" or tag.removeprefix("W/") == etag:
            return True
    return False
