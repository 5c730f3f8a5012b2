"""The desired-state read: identity and desired artifact in one indexed query.

``devices.credential_hash`` is unique (indexed); what the device should run is
derived in the same query by the shared definition
(``xdp47_common.adapters.desired``: its active target by the partial unique index
and that target's rollout), and the artifact join uses the artifacts primary key.
One round trip of four index probes. The result authenticates the device (which
tenant and device the credential belongs to) and answers it (what it should run),
so a wave is visible to its devices with the commit that starts it. Also owns the
strong ETag of a desired state.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from typing import Any
from uuid import UUID

import asyncpg

from xdp47_common.adapters.desired import (
    DESIRED_ARTIFACT,
    DESIRED_JOIN,
    DESIRED_ROLLOUT,
)
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
       a.version, a.uri, a.sha256, a.size, a.signature
FROM devices AS d
{DESIRED_JOIN}
LEFT JOIN artifacts AS a ON a.tenant = d.tenant AND a.id = {DESIRED_ARTIFACT}
WHERE d.credential_hash = $1
"""


@dataclass(frozen=True)
class DeviceView:
    """Who the credential belongs to, and what that device should run.

    ``desired`` compares with the ``current_artifact_id`` stored when it was
    read; ``answer`` compares with what a heartbeat reports right now.
    """

    tenant: str
    device_id: str
    desired: DesiredState

    def answer(self, current_artifact_id: UUID | None) -> DesiredState:
        """The desired state for a device that runs ``current_artifact_id``."""
        if self.desired.artifact_id is None:
            return self.desired
        action = "none" if current_artifact_id == self.desired.artifact_id else "update"
        if action == self.desired.action:
            return self.desired
        return self.desired.model_copy(update={"action": action})

    def answer_json(
        self, current_artifact_id: UUID | None, server_time: datetime
    ) -> bytes:
        """``answer(current_artifact_id)`` with ``server_time``, as JSON.

        Every heartbeat is answered: the JSON of each action is built once per
        view and only the time is put in per answer (a copy and a serialization
        of the model cost more than the rest of the answer).
        """
        state = self.answer(current_artifact_id)
        template = self._templates.get(state.action)
        if template is None:
            unstamped = state.model_copy(update={"server_time": None})
            template = self._templates[state.action] = (
                unstamped.model_dump_json().encode()
            )
        stamp = server_time.isoformat().replace("+00:00", "Z").encode()
        return template.replace(
            b'"server_time":null', b'"server_time":"' + stamp + b'"', 1
        )

    @cached_property
    def _templates(self) -> dict[str, bytes]:
        return {}

    @cached_property
    def payload(self) -> bytes:
        """``desired`` as the JSON body of ``GET /desired`` (computed once)."""
        return self.desired.model_dump_json().encode()

    @cached_property
    def etag(self) -> str:
        """The strong ETag of ``payload``."""
        return etag_of(self.payload)


async def read_device(
    pool: asyncpg.Pool[Any], credential_hash: bytes, *, db_timeout: float
) -> DeviceView | None:
    """Look a credential up by its hash (``tokens.hash_secret``); ``None`` when no
    device has it (unknown or rotated)."""
    row = await pool.fetchrow(READ_DEVICE, credential_hash, timeout=db_timeout)
    if row is None:
        return None
    return DeviceView(
        tenant=row["tenant"], device_id=row["id"], desired=desired_of(row)
    )


def desired_of(row: asyncpg.Record) -> DesiredState:
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
