"""A device's identity and desired state as ingest keeps and answers it
(``DeviceView``, read by ``xdp47_ingest.pg.read_device``), and the strong ETag
of a desired state."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from pydantic_core import to_json

from xdp47_common.messages import DesiredState
from xdp47_common.messages.wire import stamped_answer

__all__ = ["Desired", "DeviceView", "etag_matches", "etag_of"]


@dataclass(frozen=True, slots=True, weakref_slot=True)
class Desired:
    """What a device should run, less the device's id: one value for every device
    the same answer goes to (a wave's devices, or all with nothing desired).

    ``head`` is the desired state's JSON (the body of ``GET /desired``,
    ``server_time`` null) up to its last field's value: ``device_id`` is last, so
    a device's body is ``head`` + its id + ``}``. ``artifact_id`` and ``action``
    are the two fields a heartbeat's answer depends on. The identity cache keeps
    one ``Desired`` per distinct value (``DesiredCache`` interns them), so a
    million devices in one wave share one.
    """

    tenant: str
    artifact_id: UUID | None  # the desired artifact; None: nothing desired
    action: str  # "update" unless the stored current artifact is the desired one
    head: bytes


class DeviceView:
    """Who the credential belongs to (``tenant``, ``device_id``), and what that
    device should run (``desired``, shared with the devices told the same).

    Built per request from what the cache keeps; the body and its ETag are
    derived when a poll asks (a few hundred bytes joined and hashed), not stored
    per device.
    """

    __slots__ = ("desired", "device_id")

    def __init__(self, desired: Desired, device_id: str) -> None:
        self.desired = desired
        self.device_id = device_id

    @classmethod
    def of(cls, tenant: str, device_id: str, desired: DesiredState) -> DeviceView:
        payload = desired.model_dump_json().encode()
        tail = _id_tail(device_id)
        if not payload.endswith(tail):  # device_id is DesiredState's last field
            raise ValueError(f"desired state of {device_id!r} does not end with it")
        shared = Desired(
            tenant, desired.artifact_id, desired.action, payload[: -len(tail)]
        )
        return cls(shared, device_id)

    @property
    def tenant(self) -> str:
        return self.desired.tenant

    @property
    def action(self) -> str:
        return self.desired.action

    @property
    def payload(self) -> bytes:
        """The desired state's JSON (``server_time`` null): ``GET /desired``'s body."""
        return self.desired.head + _id_tail(self.device_id)

    @property
    def etag(self) -> str:
        return etag_of(self.payload)

    def answer_json(
        self, current_artifact_id: UUID | None, server_time: datetime
    ) -> bytes:
        """The heartbeat's answer as JSON: the desired state for a device that
        runs ``current_artifact_id`` (``action`` "update" unless it is the desired
        artifact), stamped with ``server_time`` (``wire.stamped_answer``)."""
        desired = self.desired
        return stamped_answer(
            desired.head + _id_tail(self.device_id),
            desired.action,
            desired.artifact_id,
            current_artifact_id,
            server_time,
        )


def _id_tail(device_id: str) -> bytes:
    """``device_id``'s JSON value and the object's closing brace."""
    return to_json(device_id) + b"}"


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
