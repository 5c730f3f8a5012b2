"""Service URLs for log and error lines: where, never the secret.

``describe_url`` reduces a PostgreSQL or RabbitMQ setting to its hosts, ports and
path, dropping user, password and query. It understands the multi-host forms the
services accept (``scheme://u:p@h1:1,h2:2/db`` and comma-separated URLs), where
``urllib`` would fail on the port.
"""

from __future__ import annotations

import re

__all__ = ["describe_url", "split_hosts"]

_PARTS = re.compile(
    r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<auth>[^@/?]*@)?"
    r"(?P<hosts>[^/?]*)(?P<path>[^?]*)(?P<query>.*)$"
)
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")


def split_hosts(url: str) -> list[str]:
    """One URL per host of ``url``: ``s://u:p@h1:1,h2:2/x`` → ``s://u:p@h1:1/x``,
    ``s://u:p@h2:2/x``; comma-separated full URLs are split as given."""
    text = url.strip()
    if len(_SCHEME.findall(text)) > 1:
        return [part.strip() for part in text.split(",") if part.strip()]
    m = _PARTS.match(text)
    if m is None or "," not in m["hosts"]:
        return [text] if text else []
    prefix = f"{m['scheme']}{m['auth'] or ''}"
    tail = f"{m['path']}{m['query']}"
    return [f"{prefix}{h.strip()}{tail}" for h in m["hosts"].split(",") if h.strip()]


def describe_url(url: str) -> str:
    """Hosts, ports and path of a service setting, without credentials or query.

    >>> describe_url("postgresql://u:secret@db-a:5432,db-b:5433/xdp47?x=1")
    'db-a:5432/xdp47, db-b:5433/xdp47'
    """
    described = []
    for one in split_hosts(url):
        m = _PARTS.match(one)
        described.append(f"{m['hosts']}{m['path']}" if m else "<unparsable URL>")
    return ", ".join(described) if described else "<empty URL>"
