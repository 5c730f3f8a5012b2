"""A device's identity and desired state as ingest keeps and answers it
(``DeviceView``, read by ``xdp47_ingest.pg.read_device``), and the strong ETag
of a desired state."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from xdp47_common.messages import DesiredState
from xdp47_common.messages.wire import stamped_answer

__all__ = ["DeviceView", "etag_matches", "etag_of"]


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

    def answer_json(
        self, current_artifact_id: UUID | None, server_time: datetime
    ) -> bytes:
        """The heartbeat's answer as JSON: the desired state for a device that
        runs ``current_artifact_id`` (``action`` "update" unless it is the desired
        artifact), stamped with ``server_time`` (``wire.stamped_answer``)."""
        return stamped_answer(
            self.payload,
            self.action,
            self.artifact_id,
            current_artifact_id,
            server_time,
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
