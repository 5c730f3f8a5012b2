"""The agent's state dir: identity, heartbeat sequence and the applied artifact.

Layout (all under ``state_dir``)::

    device_id            the device id (plain text), written before the first claim
    credential           {"device_id", "credential", "ingest_url"} as JSON, mode
                         0600: the claim answer (ingest_url may be null)
    seq                  heartbeat seq high-water mark (reserved block ceiling)
    current.json         {"artifact_id", "version", "sha256", "applied_at",
                         "desired_at"}: the commit point of an apply, and the
                         high-water mark of the desired states acted on
    applied_version      the applied version string (read by the demo app)
    applied_<uuid>       the applied artifact's bytes
    staging/<uuid>.part  a download in progress
    rejected.json        the desired state whose bytes failed verification
                         and the failure reported for it (``rejected``)
    previous.json        the artifact applied before the current one, and
    previous_<uuid>      its bytes: the previous slot (``previous``)
    install.lock         held (flock) by the installer child while it works
                         (``installer``)

``current.json`` is the single commit point: ``applied_version`` and the
``applied_<uuid>`` files are derived from it, and ``recover()`` brings them back in
line after a crash, so the state is always exactly the old or exactly the new one.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import NamedTuple
from uuid import UUID

from xdp47_agent.applied import Applied, artifact_name
from xdp47_agent.fsutil import (
    TMP_SUFFIX,
    FaultHook,
    atomic_write,
    no_fault,
    remove_durably,
    replace_durably,
)
from xdp47_agent.previous import PreviousSlot

__all__ = ["SEQ_BLOCK", "Applied", "Identity", "StateDir", "artifact_name"]

log = logging.getLogger(__name__)

# The seq file stores a ceiling; seqs below it may have been used. Persisting once
# per block keeps heartbeats free of disk writes, and a restart starting above
# the stored ceiling never reuses a seq even after a crash.
SEQ_BLOCK = 1000
_APPLIED_PREFIX = "applied_"


class Identity(NamedTuple):
    device_id: str
    credential: str
    # Where the control plane said heartbeats go (the claim answer); kept with
    # the credential so a restarted agent heartbeats to the same place.
    ingest_url: str | None = None
    # What the claim declared (``claim_fingerprint``): a restart with other
    # labels, properties or channel claims again, so the server learns them.
    claimed_as: str | None = None


class StateDir:
    """Reads and durably changes one device's state dir."""

    def __init__(self, root: Path, *, fault: FaultHook = no_fault) -> None:
        self.root = root
        self.staging = root / "staging"
        self._fault = fault
        self._seq_next = 0
        self._seq_ceiling = 0
        self.previous = PreviousSlot(root, fault=fault)

    # -- recovery -------------------------------------------------------------

    def recover(self) -> Applied | None:
        """Create the layout and repair what a crash may have left; idempotent.

        Returns:
            The applied artifact, or None when nothing was ever applied.
        """
        self.root.mkdir(parents=True, exist_ok=True)
        try:
            self._repair()
        except OSError as exc:
            # A dir that cannot be written (read-only, full) cannot be tidied
            # either; current.json still says what is applied, and the agent
            # must run to report the problem. The next start repairs the rest.
            log.warning("state dir not repaired: %s", exc)
        current = self.load_current()
        if self._seq_ceiling == 0:
            # Only on the first recovery: later in this run (after a failed
            # apply) the counters in memory are ahead of the file, and reading
            # it again would need a write to reserve a new block.
            self._load_seq()
        return current

    def _repair(self) -> None:
        """Drop what a crash left (tmp files, partial downloads, artifacts
        current.json does not name) and bring applied_version in line."""
        self.staging.mkdir(exist_ok=True)
        for leftover in self.root.glob(f"*{TMP_SUFFIX}"):
            leftover.unlink()
        for partial in self.staging.iterdir():
            if partial.is_file() or partial.is_symlink():
                partial.unlink()
        current = self.load_current()
        if current is not None:
            version_file = self.root / "applied_version"
            if not version_file.exists() or version_file.read_bytes() != (
                current.version.encode()
            ):
                atomic_write(version_file, current.version.encode())
        keep = self.artifact_path(current.artifact_id) if current else None
        for path in self.root.glob(f"{_APPLIED_PREFIX}*"):
            if path.name != "applied_version" and path != keep:
                remove_durably(path)
        self.previous.repair()

    # -- identity -------------------------------------------------------------

    def load_device_id(self) -> str | None:
        try:
            return (self.root / "device_id").read_text().strip() or None
        except FileNotFoundError:
            return None

    def save_device_id(self, device_id: str) -> None:
        atomic_write(self.root / "device_id", device_id.encode(), fault=self._fault)

    def load_identity(self) -> Identity | None:
        """The stored credential, if it belongs to the stored device id."""
        device_id = self.load_device_id()
        try:
            data = json.loads((self.root / "credential").read_bytes())
        except (FileNotFoundError, ValueError):
            return None
        if device_id is None or data.get("device_id") != device_id:
            return None
        ingest_url = data.get("ingest_url")
        claimed_as = data.get("claimed_as")
        return Identity(
            device_id=device_id,
            credential=str(data["credential"]),
            ingest_url=str(ingest_url) if ingest_url else None,
            claimed_as=str(claimed_as) if claimed_as else None,
        )

    def save_identity(self, identity: Identity) -> None:
        """Store the claim result: the device id first, then its credential."""
        if self.load_device_id() != identity.device_id:
            self.save_device_id(identity.device_id)
        payload = json.dumps(identity._asdict()).encode()  # its fields, in order
        atomic_write(self.root / "credential", payload, mode=0o600, fault=self._fault)

    # -- heartbeat sequence ---------------------------------------------------

    def _load_seq(self) -> None:
        try:
            ceiling = int((self.root / "seq").read_text().strip() or 0)
        except (FileNotFoundError, ValueError):
            ceiling = 0
        self._seq_next = max(ceiling, 0) + 1
        self._seq_ceiling = self._seq_next  # the first next_seq() reserves a block

    def next_seq(self) -> int:
        """A seq never handed out before, in this run or any earlier one."""
        if self._seq_next >= self._seq_ceiling:
            ceiling = self._seq_next + SEQ_BLOCK
            try:
                atomic_write(
                    self.root / "seq", str(ceiling).encode(), fault=self._fault
                )
            except OSError as exc:
                # A full or read-only disk must not silence the device: go on
                # counting in memory, so it can still report what is wrong.
                log.warning("seq ceiling not stored, counting in memory: %s", exc)
            self._seq_ceiling = ceiling
        seq = self._seq_next
        self._seq_next += 1
        return seq

    # -- applied artifact -----------------------------------------------------

    def load_current(self) -> Applied | None:
        try:
            return Applied.from_json((self.root / "current.json").read_bytes())
        except FileNotFoundError:
            return None
        except (ValueError, KeyError, TypeError) as exc:
            # Cannot happen with atomic writes; if someone edits it, say so loudly
            # and behave as a fresh device rather than crash-looping.
            log.error("ignoring unreadable current.json: %s", exc)
            return None

    def artifact_path(self, artifact_id: UUID) -> Path:
        return self.root / f"{_APPLIED_PREFIX}{artifact_name(artifact_id)}"

    def staging_path(self, artifact_id: UUID) -> Path:
        return self.staging / f"{artifact_name(artifact_id)}.part"

    def commit(self, applied: Applied, staged: Path) -> None:
        """Make ``staged`` (complete, verified, fsynced) the applied artifact.

        Order: rename the artifact in (harmless while current.json still names the
        old one), write current.json (the commit point), then the derived
        applied_version, then drop the old artifact. ``recover()`` finishes or
        undoes any prefix of this after a crash.
        """
        previous = self.load_current()
        replace_durably(
            staged, self.artifact_path(applied.artifact_id), fault=self._fault
        )
        atomic_write(self.root / "current.json", applied.to_json(), fault=self._fault)
        atomic_write(
            self.root / "applied_version", applied.version.encode(), fault=self._fault
        )
        if previous is not None and previous.artifact_id != applied.artifact_id:
            # The replaced artifact goes to the previous slot (a rollback to it
            # needs no download); the one the slot held before is dropped. The
            # apply is committed already: a slot that cannot be written is
            # only a cache lost (``recover`` tidies up what is left).
            try:
                self.previous.keep(previous, self.artifact_path(previous.artifact_id))
            except OSError as exc:
                log.warning("previous artifact not kept for a rollback: %s", exc)
                try:
                    self._repair()  # no tmp or unnamed slot file left behind
                except OSError as again:
                    log.warning("state dir not tidied: %s", again)
        self._fault("commit:done")

    def discard_staging(self, artifact_id: UUID) -> None:
        """Remove a partial download; best effort. Called from error handlers: a
        dir that turned read-only (EROFS) must not turn the reported refusal into
        a crash of the step (``recover`` removes the file once it can)."""
        try:
            self.staging_path(artifact_id).unlink()
        except FileNotFoundError:
            pass
        except OSError as exc:
            log.warning("partial download not removed: %s", exc)
