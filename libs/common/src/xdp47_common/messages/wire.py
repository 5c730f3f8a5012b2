"""The hand-built wire encoders of the heartbeat hot path, in one place.

Each builds, from parts already at hand, exactly the bytes that serializing the
model would give (``tests/unit/common/test_wire.py`` proves it byte for byte):
on ingest's request path, building and serializing a model per heartbeat cost
more than validating the body (docs/performance.md).

- ``heartbeat_json``: one ``Heartbeat``, from the validated body, without the
  fields that are null (they are optional: the consumer decodes the same
  model);
- ``heartbeat_batch``: a ``HeartbeatBatch`` message around heartbeats already
  serialized, ready to publish;
- ``stamped_answer``: the heartbeat's answer (``DesiredState``) from the stored
  desired state's JSON, with its ``action`` and ``server_time``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from uuid import UUID

from pydantic_core import to_json

from xdp47_common.messages.envelope import PreparedEnvelope
from xdp47_common.messages.heartbeat import HeartbeatBatch, HeartbeatBody

__all__ = ["heartbeat_batch", "heartbeat_json", "stamped_answer"]


def heartbeat_json(body: HeartbeatBody, device_id: str, received_at: datetime) -> bytes:
    """The JSON of the ``Heartbeat`` of ``body``, ``device_id`` and
    ``received_at``: they are ``Heartbeat``'s last two fields, appended to the
    body's own JSON. Fields that are null are left out (a metric whose value is
    null stays): most devices send no ``last_apply`` and many no artifact id,
    and every byte of a heartbeat is paid for by ingest's socket, the broker's
    log and the scheduler's decode (43 of a typical heartbeat's 234 bytes)."""
    return b"".join(
        (
            to_json(body, exclude_none=True)[:-1],
            b',"device_id":',
            to_json(device_id),
            b',"received_at":',
            to_json(received_at),
            b"}",
        )
    )


def heartbeat_batch(tenant: str, heartbeats: Sequence[bytes]) -> PreparedEnvelope:
    """The ``HeartbeatBatch`` of ``tenant`` holding ``heartbeats`` (each from
    ``heartbeat_json``), serialized: the envelope's own JSON with them spliced
    into ``heartbeats``, its last field.

    Raises:
        ValueError: no heartbeats (a batch holds at least one).
    """
    if not heartbeats:
        raise ValueError("a heartbeat batch holds at least one heartbeat")
    shell = HeartbeatBatch.model_construct(tenant=tenant, heartbeats=[])
    head = shell.model_dump_json().encode()  # … "heartbeats":[]}
    body = b"".join((head[:-2], b",".join(heartbeats), b"]}"))
    return PreparedEnvelope(
        shell.message_id, shell.type, shell.version, tenant, None, body
    )


_ACTION = {a: f'{{"action":"{a}"'.encode() for a in ("none", "update")}


def stamped_answer(
    payload: bytes,
    stored_action: str,
    desired_artifact_id: UUID | None,
    current_artifact_id: UUID | None,
    server_time: datetime,
) -> bytes:
    """The heartbeat's answer for a device that runs ``current_artifact_id``.

    ``payload`` is a ``DesiredState``'s JSON with ``server_time`` null and
    ``action`` ``stored_action`` (its first field); the answer's ``action`` is
    "update" unless the device runs ``desired_artifact_id``, and it is stamped
    with ``server_time``: two byte replacements instead of a model copy and a
    serialization per heartbeat.
    """
    body = payload
    if desired_artifact_id is not None:
        action = "none" if current_artifact_id == desired_artifact_id else "update"
        if action != stored_action:
            body = body.replace(_ACTION[stored_action], _ACTION[action], 1)
    stamp = server_time.isoformat().replace("+00:00", "Z").encode()
    return body.replace(b'"server_time":null', b'"server_time":"' + stamp + b'"', 1)
