"""The device protocol's JSON as the agent speaks it, in the standard library.

The published contract is the pydantic models of ``xdp47_common`` (``DeviceClaim``,
``DeviceClaimed``, ``HeartbeatBody``, ``LastApply``, ``DesiredState``); the agent
does not import them, so that it installs alone and idles small. What it sends
encodes to exactly what ``model_dump(mode="json")`` of those models gives, and
what it reads decodes field for field like ``model_validate``:
``tests/contract/test_agent_wire.py`` holds the two side by side. The
messages are ``NamedTuple``s, not dataclasses: ``dataclasses`` imports
``inspect`` (~1 MB resident) into the idle agent.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from enum import StrEnum
from types import MappingProxyType
from typing import Any, NamedTuple
from uuid import UUID

__all__ = [
    "ApplyResult",
    "DesiredState",
    "FailureCode",
    "Health",
    "HeartbeatBody",
    "InvalidMessage",
    "LastApply",
    "claim_body",
    "iso",
    "utcnow",
]


def utcnow() -> datetime:
    """The current time as an aware UTC datetime."""
    return datetime.now(UTC)


def iso(when: datetime | None) -> str | None:
    """A datetime as pydantic writes it in JSON (UTC as ``Z``)."""
    if when is None:
        return None
    text = when.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


# The enums restate ``xdp47_common.models``' (no pydantic here); held to them by
# tests/contract/test_agent_wire.py.
class Health(StrEnum):
    OK = "ok"
    DEGRADED = "degraded"
    FAILING = "failing"
    UNKNOWN = "unknown"


class ApplyResult(StrEnum):
    OK = "ok"
    FAILED = "failed"


class FailureCode(StrEnum):
    """Why an apply failed (``xdp47_common.models.reasons.FailureCode``)."""

    DOWNLOAD_FAILED = "download_failed"
    SIZE_MISMATCH = "size_mismatch"
    SHA256_MISMATCH = "sha256_mismatch"
    SIGNATURE_INVALID = "signature_invalid"
    DISK_FULL = "disk_full"
    STATE_DIR_READ_ONLY = "state_dir_read_only"
    APPLY_FAILED = "apply_failed"
    UNHEALTHY = "unhealthy"
    INCOMPATIBLE = "incompatible"
    DOWNGRADE = "downgrade"


class InvalidMessage(ValueError):
    """An answer that does not decode; ``fields`` names the offending ones."""

    def __init__(self, fields: list[str], detail: str) -> None:
        super().__init__(detail)
        self.fields = fields


class LastApply(NamedTuple):
    """The outcome of the device's most recent apply attempt."""

    artifact_id: UUID
    result: ApplyResult
    reason: str | None = None
    at: datetime | None = None
    code: str | None = None
    rollout_id: UUID | None = None
    attempt: int | None = None
    device_attempt: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "artifact_id": str(self.artifact_id),
            "result": self.result.value,
            "reason": self.reason,
            "at": iso(self.at),
            "code": self.code,
            "rollout_id": str(self.rollout_id) if self.rollout_id else None,
            "attempt": self.attempt,
            "device_attempt": self.device_attempt,
        }

    @classmethod
    def from_json(cls, data: Any) -> LastApply:
        """What ``to_json`` wrote (``rejected.json``).

        Raises:
            InvalidMessage: not such an object.
        """
        obj = _Reader(data, "last_apply")
        out = cls(
            artifact_id=obj.uuid("artifact_id", required=True),  # type: ignore[arg-type]
            result=ApplyResult(obj.text("result", required=True) or ""),
            reason=obj.text("reason"),
            at=obj.when("at"),
            code=obj.text("code"),
            rollout_id=obj.uuid("rollout_id"),
            attempt=obj.integer("attempt", least=1),
            device_attempt=obj.integer("device_attempt", least=1),
        )
        obj.done()
        return out


class HeartbeatBody(NamedTuple):
    """The body of ``POST /api/devices/{id}/heartbeat``."""

    seq: int
    current_version: str | None = None
    current_artifact_id: UUID | None = None
    last_apply: LastApply | None = None
    health: Health = Health.UNKNOWN
    metrics: Mapping[str, Any] = MappingProxyType({})

    def to_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "current_version": self.current_version,
            "current_artifact_id": (
                str(self.current_artifact_id) if self.current_artifact_id else None
            ),
            "last_apply": self.last_apply.to_json() if self.last_apply else None,
            "health": self.health.value,
            "metrics": dict(self.metrics),
        }


def claim_body(
    *,
    tenant: str,
    labels: dict[str, str],
    properties: dict[str, str],
    device_id: str | None,
    channel: str,
    timezone: str | None = None,
) -> dict[str, Any]:
    """The body of ``POST /api/devices/claim`` (``DeviceClaim``)."""
    return {
        "tenant": tenant,
        "labels": labels,
        "properties": properties,
        "device_id": device_id,
        "channel": channel,
        "timezone": timezone,
    }


class _Reader:
    """Typed reads of one JSON object's fields, collecting the bad ones."""

    def __init__(self, data: Any, what: str) -> None:
        if not isinstance(data, dict):
            raise InvalidMessage([], f"{what}: not a JSON object")
        self.data = data
        self.what = what
        self.bad: list[str] = []

    def _get(self, name: str, required: bool) -> Any:
        value = self.data.get(name)
        if value is None and required:
            self.bad.append(name)
        return value

    def text(self, name: str, *, required: bool = False) -> str | None:
        value = self._get(name, required)
        if value is None or isinstance(value, str):
            return value
        self.bad.append(name)
        return None

    def integer(self, name: str, *, least: int | None = None) -> int | None:
        value = self._get(name, False)
        if value is None:
            return None
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if (
            not isinstance(value, int)
            or isinstance(value, bool)
            or (least is not None and value < least)
        ):
            self.bad.append(name)
            return None
        return value

    def number(self, name: str) -> float | None:
        value = self._get(name, False)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.bad.append(name)
            return None
        return float(value)

    def flag(self, name: str) -> bool:
        value = self._get(name, False)
        if value is None:
            return False
        if not isinstance(value, bool):
            self.bad.append(name)
            return False
        return value

    def uuid(self, name: str, *, required: bool = False) -> UUID | None:
        value = self._get(name, required)
        if value is None:
            return None
        try:
            return UUID(value) if isinstance(value, str) else _bad()
        except ValueError:
            self.bad.append(name)
            return None

    def when(self, name: str) -> datetime | None:
        value = self._get(name, False)
        if value is None:
            return None
        try:
            return datetime.fromisoformat(value) if isinstance(value, str) else _bad()
        except ValueError:
            self.bad.append(name)
            return None

    def done(self) -> None:
        if self.bad:
            raise InvalidMessage(
                self.bad, f"{self.what}: invalid {', '.join(self.bad)}"
            )


def _bad() -> Any:
    raise ValueError("wrong type")


def _compatible(value: Any) -> dict[str, list[str]] | None:
    if value is None:
        return None
    if not isinstance(value, dict) or not all(
        isinstance(k, str)
        and isinstance(v, list)
        and all(isinstance(x, str) for x in v)
        for k, v in value.items()
    ):
        raise ValueError("not an object of lists of text")
    return {k: list(v) for k, v in value.items()}


class DesiredState(NamedTuple):
    """What ingest answers a heartbeat with (unknown fields are ignored)."""

    action: str
    artifact_id: UUID | None = None
    version: str | None = None
    uri: str | None = None
    sha256: str | None = None
    size: int | None = None
    signature: str | None = None
    compatible: dict[str, list[str]] | None = None
    rollout_id: UUID | None = None
    attempt: int | None = None
    rollback: bool = False
    device_attempt: int | None = None
    retry_after: datetime | None = None
    heartbeat_interval: float | None = None
    server_time: datetime | None = None
    device_id: str | None = None
    # While the device's maintenance window is closed: when it opens next.
    window_opens_at: datetime | None = None

    @classmethod
    def from_json(cls, data: Any) -> DesiredState:
        """Decode a heartbeat answer.

        Raises:
            InvalidMessage: naming every field that does not decode.
        """
        obj = _Reader(data, "desired state")
        action = obj.text("action", required=True)
        if action is not None and action not in ("none", "update"):
            obj.bad.append("action")
        try:
            compatible = _compatible(data.get("compatible"))
        except ValueError:
            obj.bad.append("compatible")
            compatible = None
        out = cls(
            action=action or "",
            artifact_id=obj.uuid("artifact_id"),
            version=obj.text("version"),
            uri=obj.text("uri"),
            sha256=obj.text("sha256"),
            size=obj.integer("size"),
            signature=obj.text("signature"),
            compatible=compatible,
            rollout_id=obj.uuid("rollout_id"),
            attempt=obj.integer("attempt", least=1),
            rollback=obj.flag("rollback"),
            device_attempt=obj.integer("device_attempt", least=1),
            retry_after=obj.when("retry_after"),
            heartbeat_interval=obj.number("heartbeat_interval"),
            server_time=obj.when("server_time"),
            device_id=obj.text("device_id"),
            window_opens_at=obj.when("window_opens_at"),
        )
        obj.done()
        return out

    def to_json(self) -> dict[str, Any]:
        """The fields as JSON values (for the contract test and logs)."""
        out: dict[str, Any] = {}
        for name, value in self._asdict().items():
            if isinstance(value, UUID):
                value = str(value)
            elif isinstance(value, datetime):
                value = iso(value)
            out[name] = value
        return out
