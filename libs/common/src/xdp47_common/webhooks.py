"""Webhooks: the signature of a delivery, its verification, and which addresses
a delivery may go to (SSRF guard). Used by the API (a subscription's URL is
checked when created) and the delivery worker (checked again before every
attempt, after DNS resolution).

A delivery is signed with the subscription's secret::

    signed  = f"{timestamp}.".encode() + body          # timestamp: unix seconds
    X-XDP47-Signature: v1=<hex HMAC-SHA256(secret, signed)>
    X-XDP47-Timestamp: <timestamp>
    X-XDP47-Event-Id:  <the event's message_id>        # deduplicate by it

A receiver recomputes the HMAC over the raw body, compares in constant time and
rejects a timestamp older than its tolerance (a replay): ``verify``.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import ipaddress
import secrets
import socket
from collections.abc import Mapping
from urllib.parse import urlsplit

__all__ = [
    "DELIVERY_HEADER",
    "EVENT_HEADER",
    "EVENT_ID_HEADER",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "DestinationRefused",
    "check_destination",
    "check_url",
    "new_secret",
    "refused_address",
    "sign",
    "signature_headers",
    "verify",
]

SIGNATURE_HEADER = "X-XDP47-Signature"
TIMESTAMP_HEADER = "X-XDP47-Timestamp"
EVENT_ID_HEADER = "X-XDP47-Event-Id"
EVENT_HEADER = "X-XDP47-Event"
DELIVERY_HEADER = "X-XDP47-Delivery-Id"
SECRET_PREFIX = "whsec_"


class DestinationRefused(ValueError):
    """The URL may not receive deliveries; the message says why."""


def new_secret() -> str:
    """A new subscription secret (shown once)."""
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The signature header's value: ``v1=<hex>``."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return "v1=" + mac.hexdigest()


def signature_headers(
    secret: str, timestamp: int, body: bytes, event_id: str, event: str, delivery: str
) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "User-Agent": "xdp47-webhooks",
        SIGNATURE_HEADER: sign(secret, timestamp, body),
        TIMESTAMP_HEADER: str(timestamp),
        EVENT_ID_HEADER: event_id,
        EVENT_HEADER: event,
        DELIVERY_HEADER: delivery,
    }


def verify(
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    now: float,
    tolerance: float = 300,
) -> bool:
    """Whether a delivery is authentic and fresh (the receiver's side)."""
    lowered = {k.lower(): v for k, v in headers.items()}
    try:
        timestamp = int(lowered[TIMESTAMP_HEADER.lower()])
        given = lowered[SIGNATURE_HEADER.lower()]
    except (KeyError, ValueError):
        return False
    if abs(now - timestamp) > tolerance:
        return False
    return hmac.compare_digest(sign(secret, timestamp, body), given)


def check_url(url: str) -> tuple[str, int]:
    """The host and port of an http(s) URL a subscription may name.

    Raises:
        DestinationRefused: not http(s), no host, credentials in it, too long.
    """
    if len(url) > 2048:
        raise DestinationRefused("the URL is longer than 2048 characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise DestinationRefused(f"not a valid URL: {exc}") from exc
    if parts.scheme not in ("http", "https"):
        raise DestinationRefused("the URL must start with http:// or https://")
    if not parts.hostname:
        raise DestinationRefused("the URL has no host")
    if parts.username or parts.password:
        raise DestinationRefused("the URL must not carry credentials")
    return parts.hostname, port or (443 if parts.scheme == "https" else 80)


def refused_address(address: str) -> str | None:
    """The kind of address deliveries may not go to (``loopback`` …); None when
    they may."""
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    for kind, flag in (
        ("unspecified", ip.is_unspecified),
        ("loopback", ip.is_loopback),
        ("link-local", ip.is_link_local),
        ("private", ip.is_private),
        ("multicast", ip.is_multicast),
        ("reserved", ip.is_reserved),
    ):
        if flag:
            return kind
    return None


async def check_destination(url: str, *, allow_private: bool) -> list[str]:
    """Resolve the URL's host; refuse it when any address is private, loopback,
    link-local (or otherwise not public), unless ``allow_private``.

    Returns:
        The resolved addresses.

    Raises:
        DestinationRefused: a bad URL, a host that does not resolve, or a
            refused address (the message names it).
    """
    host, port = check_url(url)
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(
            host, port, type=socket.SOCK_STREAM
        )
    except (OSError, UnicodeError) as exc:
        raise DestinationRefused(f"the host {host!r} does not resolve") from exc
    addresses = sorted({str(info[4][0]) for info in infos})
    if not allow_private:
        for address in addresses:
            kind = refused_address(address)
            if kind is not None:
                raise DestinationRefused(
                    f"{host} resolves to {address}, a {kind} address; deliveries "
                    "to private, loopback and link-local addresses are refused "
                    "(an operator may allow them: XDP47_WEBHOOK_ALLOW_PRIVATE)"
                )
    return addresses
