"""The previous slot: the artifact applied before the current one, kept in the
state dir so that going back to it (a rollback) needs no download.

Layout (beside ``current.json``, see ``state``)::

    previous.json        {"artifact_id", "version", "sha256", "applied_at"} of the
                         artifact applied before the current one
    previous_<uuid>      its bytes

``keep`` runs after the commit point of an apply (``current.json`` names the new
artifact): the old ``applied_<uuid>`` is renamed into the slot and recorded. A
crash before that leaves the old file, which ``state.recover`` removes (the slot
stays empty); a crash between the rename and the record leaves a slot file no
record names, which ``repair`` removes. The slot is only a cache: ``take`` hands
its bytes to an apply only when the record names the desired artifact with the
desired SHA256 and the bytes hash to it, and the apply then verifies the
signature as for a download.
"""

from __future__ import annotations

import logging
from pathlib import Path
from uuid import UUID

from xdp47_agent.applied import Applied, artifact_name
from xdp47_agent.fsutil import FaultHook, atomic_write, remove_durably, replace_durably

__all__ = ["PREVIOUS_JSON", "PreviousSlot"]

log = logging.getLogger(__name__)

PREVIOUS_JSON = "previous.json"
_PREFIX = "previous_"
_CHUNK = 1 << 20


class PreviousSlot:
    """The previous slot of one state dir."""

    def __init__(self, root: Path, *, fault: FaultHook) -> None:
        self.root = root
        self._fault = fault

    def path(self, artifact_id: UUID) -> Path:
        return self.root / f"{_PREFIX}{artifact_name(artifact_id)}"

    def load(self) -> Applied | None:
        """What the slot holds, if its record and its bytes are both there."""
        try:
            held = Applied.from_json((self.root / PREVIOUS_JSON).read_bytes())
        except FileNotFoundError:
            return None
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("ignoring unreadable %s: %s", PREVIOUS_JSON, exc)
            return None
        return held if self.path(held.artifact_id).is_file() else None

    def keep(self, previous: Applied, applied_file: Path) -> None:
        """Move the artifact just replaced (``applied_file``, its bytes) into the
        slot; call after the commit point. Older slot files are removed."""
        if not applied_file.is_file():
            return
        slot = self.path(previous.artifact_id)
        replace_durably(applied_file, slot, fault=self._fault)
        atomic_write(self.root / PREVIOUS_JSON, previous.to_json(), fault=self._fault)
        self._fault("previous:kept")
        self.repair()

    def take(self, artifact_id: UUID, sha256: str, staged: Path) -> bool:
        """Move the slot's bytes to ``staged`` when they are ``artifact_id`` with
        this SHA256 (hashed again: a changed file is dropped, not applied)."""
        held = self.load()
        if held is None or held.artifact_id != artifact_id or held.sha256 != sha256:
            return False
        import hashlib  # only an install hashes (the installer child)

        slot = self.path(artifact_id)
        digest = hashlib.sha256()
        with slot.open("rb") as f:
            while chunk := f.read(_CHUNK):
                digest.update(chunk)
        if digest.hexdigest() != sha256:
            log.warning("previous slot of %s does not match its sha256", artifact_id)
            remove_durably(slot)
            return False
        staged.parent.mkdir(exist_ok=True)
        replace_durably(slot, staged, fault=self._fault)
        return True

    def repair(self) -> None:
        """Remove slot files the record does not name (a crash's leftovers)."""
        try:
            raw = (self.root / PREVIOUS_JSON).read_bytes()
            keep: Path | None = self.path(Applied.from_json(raw).artifact_id)
        except (FileNotFoundError, ValueError, KeyError, TypeError):
            keep = None
        for path in self.root.glob(f"{_PREFIX}*"):
            if path.name != PREVIOUS_JSON and path != keep:
                remove_durably(path)
