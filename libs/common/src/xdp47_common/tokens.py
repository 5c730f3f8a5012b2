"""Secrets handed to clients: API tokens and device credentials.

A secret looks like ``xdp47t_<43 base62 chars><6-char checksum>`` (``xdp47d_`` for a
device credential). The prefix makes a leaked secret recognisable to scanners; the
checksum lets a server reject a malformed or mistyped secret before any database
lookup. Only ``hash_secret(secret)`` (SHA256) is ever stored: with 256 bits of
randomness a slow hash would add latency and no safety.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import zlib
from enum import StrEnum

__all__ = [
    "SecretKind",
    "display_prefix",
    "hash_secret",
    "looks_valid",
    "new_secret",
    "secrets_equal",
]

_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_BODY_LEN = 43  # ceil(256 / log2(62))
_CHECK_LEN = 6
_INDEX = {c: i for i, c in enumerate(_ALPHABET)}
_CHECK_MOD = 62**_CHECK_LEN
_SHAPE = re.compile(f"[0-9A-Za-z]{{{_BODY_LEN + _CHECK_LEN}}}")


class SecretKind(StrEnum):
    API_TOKEN = "xdp47t_"
    DEVICE_CREDENTIAL = "xdp47d_"


def _base62(n: int, width: int) -> str:
    out = []
    for _ in range(width):
        n, r = divmod(n, 62)
        out.append(_ALPHABET[r])
    return "".join(reversed(out))


def _checksum(body: str) -> str:
    return _base62(zlib.crc32(body.encode()), _CHECK_LEN)


def new_secret(kind: SecretKind) -> str:
    """Return a fresh secret of ``kind`` with 256 bits of randomness."""
    body = "".join(secrets.choice(_ALPHABET) for _ in range(_BODY_LEN))
    return f"{kind.value}{body}{_checksum(body)}"


def looks_valid(secret: str, kind: SecretKind) -> bool:
    """Check prefix, length, alphabet and checksum; no database needed."""
    # ``kind`` is a str (StrEnum); its ``.value`` is a slow descriptor lookup.
    if not secret.startswith(kind):
        return False
    rest = secret[len(kind) :]
    # Every device request checks its credential: a regex, not a Python loop.
    if _SHAPE.fullmatch(rest) is None:
        return False
    body, check = rest[:_BODY_LEN], rest[_BODY_LEN:]
    # Decode the check digits rather than encode the CRC: cheaper, same answer.
    value = 0
    for c in check:
        value = value * 62 + _INDEX[c]
    return bool(value == zlib.crc32(body.encode()) % _CHECK_MOD)


def hash_secret(secret: str) -> bytes:
    """The stored form of a secret: its SHA256 digest (32 bytes)."""
    return hashlib.sha256(secret.encode()).digest()


def secrets_equal(a: bytes, b: bytes) -> bool:
    """Compare two digests in constant time."""
    return hmac.compare_digest(a, b)


def display_prefix(secret: str) -> str:
    """The part of a secret that is safe to show: kind prefix plus 6 characters."""
    return secret[: secret.index("_") + 7]
