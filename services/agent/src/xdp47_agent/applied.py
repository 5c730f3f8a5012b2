"""What an apply committed (``Applied``, the content of ``current.json`` and of
the previous slot's record) and the one form an artifact id takes in a path."""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import NamedTuple
from uuid import UUID

__all__ = ["Applied", "artifact_name"]

_UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def artifact_name(artifact_id: UUID | str) -> str:
    """The canonical UUID text, the only form an artifact id takes in a path.

    Raises:
        ValueError: ``artifact_id`` is not a canonical UUID (e.g. holds ``../``).
    """
    text = str(artifact_id)
    if not _UUID_RE.fullmatch(text):
        raise ValueError(f"artifact id {text[:80]!r} is not a canonical UUID")
    return text


class Applied(NamedTuple):
    artifact_id: UUID
    version: str
    sha256: str
    applied_at: datetime
    # The server_time of the desired state this apply acted on: the agent's
    # high-water mark against replayed, older desired states (None: unknown).
    desired_at: datetime | None = None

    def to_json(self) -> bytes:
        data = {
            "artifact_id": str(self.artifact_id),
            "version": self.version,
            "sha256": self.sha256,
            "applied_at": self.applied_at.isoformat(),
        }
        if self.desired_at is not None:
            data["desired_at"] = self.desired_at.isoformat()
        return json.dumps(data, sort_keys=True).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> Applied:
        data = json.loads(raw)
        return cls(
            artifact_id=UUID(artifact_name(data["artifact_id"])),
            version=str(data["version"]),
            sha256=str(data["sha256"]),
            applied_at=datetime.fromisoformat(data["applied_at"]),
            desired_at=(
                datetime.fromisoformat(data["desired_at"])
                if data.get("desired_at")
                else None
            ),
        )
