"""Artifacts whose bytes failed verification, remembered so they are not fetched again.

A download whose bytes do not match the desired size, SHA256 or signature will not
match the next time either: the same URI serves the same bytes. Fetching it again
every backoff period costs up to ``max_artifact_bytes`` per try on a metered link.
So the agent remembers the refused desired state (artifact id, sha256, rollout id
and attempt) with the failure it reported, in memory and in
``state_dir/rejected.json`` when the dir can be written (a restart must not fetch
it again either), and reports that failure in every heartbeat until the desired
state names something else: another artifact, other bytes (sha256), another
rollout (a rollback or a new rollout of the same artifact), another attempt of
the same rollout (a retry), or another try the scheduler granted
(``device_attempt``: it grants one only for a failure it retries, such as a
truncated download reported as a size mismatch). Failures that may pass on a
second try (network, disk) are not remembered here; they back off instead.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import NamedTuple
from uuid import UUID

from xdp47_agent.fsutil import FaultHook, atomic_write, no_fault, remove_durably
from xdp47_agent.wire import DesiredState, FailureCode, LastApply

__all__ = ["VERIFICATION_CODES", "Rejected", "RejectedStore"]

log = logging.getLogger(__name__)

# The codes that say "these bytes are wrong", not "this attempt went wrong".
VERIFICATION_CODES = frozenset(
    {
        FailureCode.SIZE_MISMATCH,
        FailureCode.SHA256_MISMATCH,
        FailureCode.SIGNATURE_INVALID,
        # Not a fault of the bytes, but asking again cannot change the answer.
        FailureCode.INCOMPATIBLE,
    }
)
_FILE = "rejected.json"


class Rejected(NamedTuple):
    """A refused desired state and the failure reported for it."""

    artifact_id: UUID
    sha256: str
    rollout_id: UUID | None
    attempt: int | None
    failure: LastApply
    device_attempt: int | None = None

    def matches(self, desired: DesiredState) -> bool:
        """True when ``desired`` asks for exactly the bytes that were refused."""
        return (
            desired.artifact_id == self.artifact_id
            and (desired.sha256 or "").strip().lower() == self.sha256
            and desired.rollout_id == self.rollout_id
            and desired.attempt == self.attempt
            and desired.device_attempt == self.device_attempt
        )

    @classmethod
    def of(cls, desired: DesiredState, failure: LastApply) -> Rejected:
        assert desired.artifact_id is not None
        return cls(
            desired.artifact_id,
            (desired.sha256 or "").strip().lower(),
            desired.rollout_id,
            desired.attempt,
            failure,
            desired.device_attempt,
        )

    def to_json(self) -> bytes:
        return json.dumps(
            {
                "artifact_id": str(self.artifact_id),
                "sha256": self.sha256,
                "rollout_id": str(self.rollout_id) if self.rollout_id else None,
                "attempt": self.attempt,
                "device_attempt": self.device_attempt,
                "failure": self.failure.to_json(),
            },
            sort_keys=True,
        ).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> Rejected:
        data = json.loads(raw)
        rollout = data.get("rollout_id")
        return cls(
            UUID(str(data["artifact_id"])),
            str(data["sha256"]),
            UUID(str(rollout)) if rollout else None,
            int(data["attempt"]) if data.get("attempt") is not None else None,
            LastApply.from_json(data["failure"]),
            (
                int(data["device_attempt"])
                if data.get("device_attempt") is not None
                else None
            ),
        )


class RejectedStore:
    """``rejected.json`` in the state dir; every write is best effort, since a
    dir that cannot be written must not stop the agent from reporting."""

    def __init__(self, root: Path, *, fault: FaultHook = no_fault) -> None:
        self.path = root / _FILE
        self._fault = fault

    def load(self) -> Rejected | None:
        try:
            return Rejected.from_json(self.path.read_bytes())
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("ignoring unreadable %s: %s", self.path.name, exc)
            return None

    def save(self, rejected: Rejected) -> None:
        try:
            atomic_write(self.path, rejected.to_json(), fault=self._fault)
        except OSError as exc:
            log.warning("refused artifact remembered in memory only: %s", exc)

    def clear(self) -> None:
        try:
            remove_durably(self.path)
        except OSError as exc:
            log.warning("%s not removed: %s", self.path.name, exc)
