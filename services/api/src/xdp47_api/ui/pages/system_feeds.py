"""What the System page reads from the other services' ``/metrics``.

The heartbeat rate is ingest's own count of accepted heartbeats
(``xdp47_ingest_http_requests_total`` on the heartbeat route, status 202),
summed over every ingest replica listed in ``XDP47_INGEST_METRICS_URLS`` and
turned into a rate between two reads of the page (it polls every few seconds);
the scheduler lag is the largest ``xdp47_scheduler_heard_behind_seconds`` of the
replicas in ``XDP47_SCHEDULER_METRICS_URLS``. A listed name that resolves to
several addresses (a headless Service, a compose service with replicas) is read
at each of them, so every replica counts once. A replica that does not answer
within a second makes the figure unknown (shown as such), never a wrong number.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import httpx
from prometheus_client.parser import text_string_to_metric_families

__all__ = ["Feeds", "Reading", "metrics_urls"]

HEARTBEAT_ROUTE = "/api/devices/{device_id}/heartbeat"
_TIMEOUT = 1.0

Pick = Callable[[str, dict[str, str]], bool]


def metrics_urls(listed: str, fallback_base: str | None = None) -> list[str]:
    """The comma-separated ``listed`` URLs, else ``fallback_base`` + /metrics."""
    urls = [u.strip() for u in listed.split(",") if u.strip()]
    if not urls and fallback_base:
        urls = [fallback_base.rstrip("/") + "/metrics"]
    return urls


def _accepted(name: str, labels: dict[str, str]) -> bool:
    return (
        name == "xdp47_ingest_http_requests_total"
        and labels.get("route") == HEARTBEAT_ROUTE
        and labels.get("status") == "202"
    )


def _behind(name: str, labels: dict[str, str]) -> bool:
    return name == "xdp47_scheduler_heard_behind_seconds"


async def _each_address(url: str) -> list[str]:
    """``url`` once per address its host name resolves to (one replica each);
    as listed when the host is an address, has one address or does not resolve
    (the read then fails and says why)."""
    parts = urlsplit(url)
    host = parts.hostname
    if host is None or _is_address(host):
        return [url]
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(
            host, port, type=socket.SOCK_STREAM
        )
    except OSError:
        return [url]
    addresses = sorted({str(info[4][0]) for info in infos})
    if len(addresses) < 2:
        return [url]
    return [
        urlunsplit(
            parts._replace(netloc=f"[{a}]:{port}" if ":" in a else f"{a}:{port}")
        )
        for a in addresses
    ]


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class Reading:
    """A figure, or why there is none (``problem``)."""

    value: float | None
    problem: str | None = None


class Feeds:
    """Reads of ingest and scheduler metrics; keeps the last heartbeat count so
    the next read gives a rate. One instance per API process."""

    def __init__(
        self,
        ingest_urls: list[str],
        scheduler_urls: list[str],
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ingest_urls = ingest_urls
        self.scheduler_urls = scheduler_urls
        self._clock = clock
        self._last: tuple[float, float] | None = None  # (monotonic, total)

    async def _values(self, urls: list[str], pick: Pick) -> list[float]:
        async def one(client: httpx.AsyncClient, url: str) -> list[float]:
            r = await client.get(url)
            r.raise_for_status()
            return [
                s.value
                for family in text_string_to_metric_families(r.text)
                for s in family.samples
                if pick(s.name, s.labels)
            ]

        every = [u for url in urls for u in await _each_address(url)]
        async with httpx.AsyncClient(timeout=_TIMEOUT) as client:
            parts = await asyncio.gather(*(one(client, u) for u in every))
        return [v for part in parts for v in part]

    async def heartbeat_rate(self) -> Reading:
        """Heartbeats per second ingest accepted since the previous read."""
        if not self.ingest_urls:
            return Reading(None, "XDP47_INGEST_METRICS_URLS is not set")
        try:
            total = sum(await self._values(self.ingest_urls, _accepted))
        except (httpx.HTTPError, ValueError) as exc:
            self._last = None
            return Reading(None, f"ingest metrics unavailable: {exc}")
        now, last = self._clock(), self._last
        self._last = (now, total)
        if last is None or now - last[0] < 0.5 or total < last[1]:
            # First read, too close, or a replica restarted (its counter reset).
            return Reading(None, "measuring")
        return Reading((total - last[1]) / (now - last[0]))

    async def scheduler_lag(self) -> Reading:
        """How far the scheduler's heard-until watermark trails the clock."""
        if not self.scheduler_urls:
            return Reading(None, "XDP47_SCHEDULER_METRICS_URLS is not set")
        try:
            values = await self._values(self.scheduler_urls, _behind)
        except (httpx.HTTPError, ValueError) as exc:
            return Reading(None, f"scheduler metrics unavailable: {exc}")
        if not values or max(values) < 0:
            return Reading(None, "nothing heard since the scheduler started")
        return Reading(max(values))
