"""Artifact verification: the reasons a download is refused, the code each one
is reported as, and the Ed25519 signature check (over the raw 32-byte SHA256
digest, signature in base64) with PyNaCl (libsodium), imported only when a
signature is checked: an idle agent never loads it."""

from __future__ import annotations

import base64
import binascii
import errno
from collections.abc import Sequence

from xdp47_agent.wire import FailureCode

__all__ = [
    "MAX_MESSAGE",
    "ApplyRefused",
    "Reason",
    "check_signature",
    "refusal_for_os_error",
]

# ``last_apply.reason`` holds at most this many characters (the model's bound).
MAX_MESSAGE = 500


class Reason:
    """The ``last_apply.reason`` strings the agent reports (stable; match on them)."""

    SHA256_MISMATCH = "sha256 mismatch"
    SIZE_EXCEEDED = "size exceeded"
    SIZE_MISMATCH = "size mismatch"
    SIGNATURE_INVALID = "signature invalid"
    UNSIGNED_REFUSED = "unsigned artifact refused"
    STALLED = "download stalled"
    DEADLINE = "download deadline exceeded"
    REDIRECT_REFUSED = "redirect refused"
    URI_REFUSED = "uri refused"
    HTTP_ERROR = "download failed"
    IO_ERROR = "apply failed"
    DISK_FULL = "disk full"
    READ_ONLY = "state dir read-only"
    INCOMPATIBLE = "incompatible"
    DOWNGRADE = "downgrade"


# The code each reason is reported as (``last_apply.code``): operators act on
# the code, the reason text and its detail say which case it was.
_CODES: dict[str, FailureCode] = {
    Reason.SHA256_MISMATCH: FailureCode.SHA256_MISMATCH,
    Reason.SIZE_EXCEEDED: FailureCode.SIZE_MISMATCH,
    Reason.SIZE_MISMATCH: FailureCode.SIZE_MISMATCH,
    Reason.SIGNATURE_INVALID: FailureCode.SIGNATURE_INVALID,
    Reason.UNSIGNED_REFUSED: FailureCode.SIGNATURE_INVALID,
    Reason.STALLED: FailureCode.DOWNLOAD_FAILED,
    Reason.DEADLINE: FailureCode.DOWNLOAD_FAILED,
    Reason.REDIRECT_REFUSED: FailureCode.DOWNLOAD_FAILED,
    Reason.URI_REFUSED: FailureCode.DOWNLOAD_FAILED,
    Reason.HTTP_ERROR: FailureCode.DOWNLOAD_FAILED,
    Reason.IO_ERROR: FailureCode.APPLY_FAILED,
    Reason.DISK_FULL: FailureCode.DISK_FULL,
    Reason.READ_ONLY: FailureCode.STATE_DIR_READ_ONLY,
    Reason.INCOMPATIBLE: FailureCode.INCOMPATIBLE,
    Reason.DOWNGRADE: FailureCode.DOWNGRADE,
}

# A state dir that cannot be written: mounted read-only, or (for an agent not
# running as root) files or directories it has no write permission on.
_READ_ONLY_ERRNOS = frozenset({errno.EROFS, errno.EACCES, errno.EPERM})
_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})


class ApplyRefused(Exception):
    """An artifact was not applied; ``reason`` is one of ``Reason``."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail

    @property
    def code(self) -> FailureCode:
        return _CODES.get(self.reason, FailureCode.APPLY_FAILED)

    @property
    def message(self) -> str:
        """The reason and its detail, bounded for ``last_apply.reason``."""
        text = str(self).replace("\x00", "")
        if len(text) > MAX_MESSAGE:
            text = text[: MAX_MESSAGE - 1] + "…"
        return text


def refusal_for_os_error(exc: OSError) -> ApplyRefused:
    """The refusal a local I/O error stands for: a full disk, a state dir that
    cannot be written, or another apply failure (EIO, ...)."""
    if exc.errno in _FULL_ERRNOS:
        reason = Reason.DISK_FULL
    elif exc.errno in _READ_ONLY_ERRNOS:
        reason = Reason.READ_ONLY
    else:
        reason = Reason.IO_ERROR
    name = errno.errorcode.get(exc.errno or 0, "")
    where = f" ({exc.filename})" if exc.filename else ""
    detail = f"{name}: {exc.strerror or exc}{where}" if name else str(exc)
    return ApplyRefused(reason, detail)


def check_signature(
    digest: bytes,
    signature: str | None,
    keys: Sequence[bytes],
    *,
    required: bool,
) -> None:
    """Accept ``digest`` only under the configured signature rules.

    Args:
        digest: the raw SHA256 of the downloaded bytes (already checked).
        signature: base64 Ed25519 signature from the desired state, or None.
        keys: raw 32-byte Ed25519 public keys; any one may sign.
        required: refuse an unsigned artifact.

    Raises:
        ApplyRefused: unsigned while required, or no key verifies the signature.
    """
    if not signature:
        if required:
            raise ApplyRefused(Reason.UNSIGNED_REFUSED)
        return
    if not keys:
        # Signed, but this device trusts no key: the signature proves nothing to
        # it, so the SHA256 from the control plane is all it has (same as unsigned).
        return
    try:
        raw = base64.b64decode(signature, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ApplyRefused(Reason.SIGNATURE_INVALID, "not base64") from exc
    if any(_verifies(key, raw, digest) for key in keys):
        return
    raise ApplyRefused(Reason.SIGNATURE_INVALID, "no configured key verifies it")


def _verifies(key: bytes, signature: bytes, digest: bytes) -> bool:
    """Whether ``signature`` is ``key``'s Ed25519 signature of ``digest``
    (libsodium's strict check: canonical encodings, ``S`` below the order)."""
    from nacl.exceptions import BadSignatureError, CryptoError
    from nacl.signing import VerifyKey

    try:
        VerifyKey(key).verify(digest, signature)
    except (BadSignatureError, CryptoError, ValueError, TypeError):
        return False
    return True
