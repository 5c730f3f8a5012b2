"""Artifact verification: the reasons a download is refused, and the Ed25519
signature check (over the raw 32-byte SHA256 digest, signature in base64)."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

__all__ = ["ApplyRefused", "Reason", "check_signature"]


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


class ApplyRefused(Exception):
    """An artifact was not applied; ``reason`` is one of ``Reason``."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


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
    for key in keys:
        try:
            Ed25519PublicKey.from_public_bytes(key).verify(raw, digest)
        except InvalidSignature:
            continue
        return
    raise ApplyRefused(Reason.SIGNATURE_INVALID, "no configured key verifies it")
