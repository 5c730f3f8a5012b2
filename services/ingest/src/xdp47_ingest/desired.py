"""The desired-state read: identity and desired artifact in one indexed query.

``devices.credential_hash`` is unique (indexed); what the device should run is
derived in the same query by the shared definition
(``xdp47_common.adapters.desired``: its active target by the partial unique index
and that target's rollout), and the artifact join uses the artifacts primary key.
One round trip of four index probes. The result authenticates the device (which
tenant and device the credential belongs to) and answers it (what it should run),
so a wave is visible to its devices with the commit that starts it. Also owns the
strong ETag of a desired state.

The ``uri`` of an uploaded artifact (``content_stored``) is the api's download
URL; with the S3 store, ingest answers a presigned URL of the bucket (or the
operator's CDN) instead (``ArtifactLinks``), so the bytes never pass through a
control-plane process. The SHA256 and signature still come from the database.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

from xdp47_common.adapters.desired import (
    DESIRED_ARTIFACT,
    DESIRED_JOIN,
    DESIRED_ROLLOUT,
)
from xdp47_common.adapters.objects import ArtifactLinks
from xdp47_common.messages import DesiredState

__all__ = [
    "READ_DEVICE",
    "DeviceView",
    "desired_of",
    "etag_matches",
    "etag_of",
    "read_device",
]

READ_DEVICE = f"""
SELECT d.tenant, d.id, d.current_artifact_id,
       {DESIRED_ARTIFACT} AS desired_artifact_id,
       {DESIRED_ROLLOUT} AS desired_rollout_id,
       a.version, a.uri, a.sha256, a.size, a.signature, a.content_stored,
       a.compatible::text AS compatible
FROM devices AS d
{DESIRED_JOIN}
LEFT JOIN artifacts AS a ON a.tenant = d.tenant AND a.id = {DESIRED_ARTIFACT}
WHERE d.credential_hash = $1
"""  # nosec B608


@dataclass(frozen=True, slots=True)
class DeviceView:
    """Who the credential belongs to, and what that device should run.

    Compact, because each replica keeps one per device it serves (``cache``):
    the desired state as its JSON (``payload``, the body of ``GET /desired``,
    ``server_time`` null), its ETag, and the two fields a heartbeat's answer
    depends on; about 1 KB with the cache's bookkeeping.
    """

    tenant: str
    device_id: str
    artifact_id: UUID | None  # the desired artifact; None: nothing desired
    action: str  # "update" unless the stored current artifact is the desired one
    payload: bytes
    etag: str

    @classmethod
    def of(cls, tenant: str, device_id: str, desired: DesiredState) -> DeviceView:
        payload = desired.model_dump_json().encode()
        return cls(
            tenant,
            device_id,
            desired.artifact_id,
            desired.action,
            payload,
            etag_of(payload),
        )

    @property
    def desired(self) -> DesiredState:
        """The desired state as a model (parsed from ``payload``: not for hot paths)."""
        return DesiredState.model_validate_json(self.payload)

    def answer_json(
        self, current_artifact_id: UUID | None, server_time: datetime
    ) -> bytes:
        """The heartbeat's answer as JSON: the desired state for a device that
        runs ``current_artifact_id`` (``action`` "update" unless it is the desired
        artifact), stamped with ``server_time``.

        Built from ``payload`` by two byte replacements (``action`` is the
        first field, ``server_time`` is null there): a model copy and a
        serialization per heartbeat cost more than the rest of the answer.
        """
        body = self.payload
        if self.artifact_id is not None:
            action = "none" if current_artifact_id == self.artifact_id else "update"
            if action != self.action:
                body = body.replace(_ACTION[self.action], _ACTION[action], 1)
        stamp = server_time.isoformat().replace("+00:00", "Z").encode()
        return body.replace(b'"server_time":null', b'"server_time":"' + stamp + b'"', 1)


_ACTION = {a: f'{{"action":"{a}"'.encode() for a in ("none", "update")}


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


def desired_of(row: asyncpg.Record, links: ArtifactLinks | None = None) -> DesiredState:
    """The device's answer from a ``READ_DEVICE`` row."""
    if row["desired_artifact_id"] is None or row["uri"] is None:
        return DesiredState(action="none", device_id=row["id"])
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
        compatible=json.loads(row["compatible"]) if row["compatible"] else None,
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
