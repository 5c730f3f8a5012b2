"""Credentials out of every log line: one function that masks secrets in text,
a structlog processor for the server processes and a stdlib formatter for the
agent and the demo app.

What is masked (each keeps its name, so the line still says what was there):

- XDP47 secrets anywhere (``xdp47t_…`` API tokens, ``xdp47d_…`` device
  credentials), recognisable by their prefix;
- the value of credential-like query parameters (``access_token``, ``token``,
  ``api_key``, ``credential``, presigned-URL signatures …) in any URL;
- ``Bearer``/``Basic`` credentials and the value of ``Authorization``,
  ``Cookie`` and API-key headers, in any rendering (text, dict, bytes pairs);
- the password of a URL's user info (``amqp://guest:…@broker``).

The development token has no prefix; it is masked by where it appears (a header,
a query parameter). Pure: standard library only, no I/O.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any

from xdp47_common.log_levels import demote_request_lines

__all__ = [
    "MASK",
    "SENSITIVE_QUERY_PARAMETERS",
    "RedactingFormatter",
    "configure_plain_logging",
    "redact",
    "redact_value",
]

MASK = "[redacted]"
SENSITIVE_QUERY_PARAMETERS = frozenset(
    {
        "access_token",
        "token",
        "api_token",
        "api_key",
        "apikey",
        "credential",
        "password",
        "secret",
        "client_secret",
        "refresh_token",
        "id_token",
        "session",
        "sig",
        "X-Amz-Signature",
        "X-Amz-Credential",
        "X-Amz-Security-Token",
        "X-Goog-Signature",
    }
)
_SENSITIVE_HEADERS = (
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
    "x-api-key",
    "x-auth-token",
)

_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # Prefixed secrets, wherever they appear.
    (re.compile(r"\b(xdp47[td]_)[0-9A-Za-z]+"), rf"\g<1>{MASK}"),
    # A URL's password: scheme://user:password@host
    (
        re.compile(r"(\b[A-Za-z][A-Za-z0-9+.-]*://[^/\s:@\"']*:)[^@\s/\"']+@"),
        rf"\g<1>{MASK}@",
    ),
    # name=value of a credential-like query (or form) parameter.
    (
        re.compile(
            r"(?i)([?&;]\s*(?:"
            + "|".join(re.escape(n) for n in sorted(SENSITIVE_QUERY_PARAMETERS))
            + r")=)[^&;#\s\"'<>]*"
        ),
        rf"\g<1>{MASK}",
    ),
    # A header and its value, as text ("Authorization: x"), in a dict or JSON
    # ("'authorization': 'x'") or as ASGI bytes pairs ((b'cookie', b'x')).
    (
        re.compile(
            r"(?i)(\b(?:" + "|".join(_SENSITIVE_HEADERS) + r")\b['\"]?\s*[:=,]\s*"
            r"(?:b?['\"])?)(?:(?:Bearer|Basic|Digest|Token)\s+)?[^'\"\s,}\])]+"
        ),
        rf"\g<1>{MASK}",
    ),
    # A bare scheme and credential ("Bearer abc").
    (re.compile(r"(?i)\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]+"), rf"\g<1> {MASK}"),
)


def redact(text: str) -> str:
    """``text`` with every credential it holds masked (see the module doc)."""
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


_SENSITIVE_KEYS = frozenset(
    [n.lower() for n in SENSITIVE_QUERY_PARAMETERS] + list(_SENSITIVE_HEADERS)
)


def _sensitive_key(key: object) -> bool:
    if isinstance(key, bytes | bytearray):
        key = bytes(key).decode("latin-1")
    return isinstance(key, str) and key.lower() in _SENSITIVE_KEYS


def redact_value(value: Any) -> Any:
    """``redact`` through strings, bytes, mappings and sequences; other objects
    are rendered with ``str`` first, since a renderer would print them anyway."""
    if isinstance(value, str):
        return redact(value)
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, bytes | bytearray):
        return redact(bytes(value).decode("latin-1"))
    if isinstance(value, Mapping):
        return {
            k: MASK if _sensitive_key(k) else redact_value(v) for k, v in value.items()
        }
    if isinstance(value, tuple) and len(value) == 2 and _sensitive_key(value[0]):
        return [redact_value(value[0]), MASK]  # an ASGI (name, value) header pair
    if isinstance(value, list | tuple | set | frozenset):
        return [redact_value(v) for v in value]
    return redact(str(value))


class RedactingFormatter(logging.Formatter):
    """A ``logging.Formatter`` whose output (message, arguments, traceback) has
    every credential masked."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


def configure_plain_logging(level: str | int, fmt: str) -> None:
    """``logging.basicConfig`` for the processes without structlog (agent, demo
    app): one stderr handler whose lines have credentials masked, per-request
    HTTP client lines at DEBUG."""
    handler = logging.StreamHandler()
    handler.setFormatter(RedactingFormatter(fmt))
    logging.basicConfig(level=level, handlers=[handler], force=True)
    demote_request_lines(logging.getLogger().getEffectiveLevel())
