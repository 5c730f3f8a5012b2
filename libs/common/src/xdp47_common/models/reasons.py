"""Why a device's apply failed, and what every target reason means to a person.

``FailureCode`` is what an agent reports in ``last_apply.code`` (and the
scheduler's ``unhealthy``); the scheduler stores it as the rollout target's
``reason``. The other target reasons are the scheduler's own (a skipped or
timed-out device). ``describe_reason`` gives the one sentence the API, the UI and
the CLI show beside a code, so every surface says the same thing.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = [
    "FAILURE_CODE_PATTERN",
    "REASON_SENTENCES",
    "FailureCode",
    "describe_reason",
]

# Codes are plain identifiers; a newer agent may send one this version does not
# know, which is stored and shown as is (hence a pattern, not an enum, on the wire).
FAILURE_CODE_PATTERN = r"^[a-z][a-z0-9_]{0,47}$"


class FailureCode(StrEnum):
    """Why an apply failed: the codes agents of this version report."""

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


REASON_SENTENCES: dict[str, str] = {
    FailureCode.DOWNLOAD_FAILED: (
        "The artifact could not be downloaded (HTTP error, refused URL or "
        "redirect, stalled or too slow transfer)."
    ),
    FailureCode.SIZE_MISMATCH: (
        "The download did not have the declared size (truncated or too long)."
    ),
    FailureCode.SHA256_MISMATCH: (
        "The downloaded bytes do not match the artifact's SHA256; nothing was applied."
    ),
    FailureCode.SIGNATURE_INVALID: (
        "The artifact's signature is missing or no trusted key verifies it."
    ),
    FailureCode.DISK_FULL: "The device's disk is full.",
    FailureCode.STATE_DIR_READ_ONLY: "The agent's state dir cannot be written.",
    FailureCode.APPLY_FAILED: "Applying the artifact failed on the device.",
    FailureCode.UNHEALTHY: (
        "The device runs the new version but reports itself unhealthy."
    ),
    FailureCode.INCOMPATIBLE: (
        "The artifact's declared compatibility does not include this device's "
        "properties; the agent refused it without downloading."
    ),
    FailureCode.DOWNGRADE: (
        "The desired version is lower than the one the device runs and the "
        "desired state is not a rollback; the agent refused it without "
        "downloading."
    ),
    "timed_out": "The device did not report the update before the wave deadline.",
    "offline": "The device was offline when its wave started, so it was skipped.",
    "aborted": "The rollout was aborted before this device was updated.",
    "rollout_completed": "The rollout ended before this device was updated.",
    "rollout_partial": "The rollout ended before this device was updated.",
    "rollout_failed": "The rollout failed before this device was updated.",
    "rollout_aborted": "The rollout was aborted before this device was updated.",
}


def describe_reason(code: str | None) -> str | None:
    """The human sentence for a target reason or failure code.

    Returns:
        None for no code; a generic sentence for a code this version does not know.
    """
    if not code:
        return None
    return REASON_SENTENCES.get(code, f"Reported reason: {code}.")
