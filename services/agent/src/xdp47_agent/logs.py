"""The agent's log lines with credentials masked: device credentials and tokens
(``xdp47d_…``, ``xdp47t_…``), bearer values, a URL's password and the value of
credential-like query parameters (a presigned artifact URL in an error). The
control plane's fuller rule is ``xdp47_common.redact``; the agent keeps the
part its own lines can hold, checked against it in tests/contract."""

from __future__ import annotations

import logging
import re

__all__ = ["configure_logging", "redact"]

MASK = "[redacted]"
_QUERY = (
    "access_token|token|api_token|api_key|apikey|credential|password|secret|"
    "client_secret|refresh_token|id_token|session|sig|X-Amz-Signature|"
    "X-Amz-Credential|X-Amz-Security-Token|X-Goog-Signature"
)
_PATTERNS = (
    (re.compile(r"\b(xdp47[td]_)[0-9A-Za-z]+"), rf"\g<1>{MASK}"),
    (
        re.compile(r"(\b[A-Za-z][A-Za-z0-9+.-]*://[^/\s:@\"']*:)[^@\s/\"']+@"),
        rf"\g<1>{MASK}@",
    ),
    (re.compile(rf"(?i)([?&;]\s*(?:{_QUERY})=)[^&;#\s\"'<>]*"), rf"\g<1>{MASK}"),
    (re.compile(r"(?i)(\b(?:Bearer|Basic)\s+)[^\s\"',]+"), rf"\g<1>{MASK}"),
)


def redact(text: str) -> str:
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class _Redacting(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


def configure_logging(level: str) -> None:
    """One stderr handler whose lines have credentials masked."""
    handler = logging.StreamHandler()
    handler.setFormatter(_Redacting("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=level, handlers=[handler], force=True)
