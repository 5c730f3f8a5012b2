"""Where heartbeat metrics and health come from.

``HttpMetrics`` reads the demo app's ``/metrics`` JSON; health follows its
``status`` field. When no URL is configured, or the app does not answer,
``synthetic_metrics`` stands in (marked ``synthetic: true``) so the control plane
still sees a live device: health ``ok`` when there is no app to watch,
``degraded`` when the configured app is unreachable.
"""

from __future__ import annotations

import binascii
import json
import logging
import time
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, NamedTuple, Protocol

from xdp47_agent.http import Http, HttpError, read_bounded
from xdp47_agent.wire import Health

__all__ = ["HttpMetrics", "MetricsSource", "Sample", "synthetic_metrics", "to_sample"]

log = logging.getLogger(__name__)

MetricValue = float | int | str | bool | None
_MAX_METRICS = 60  # the body allows 64; leave room for the agent's own keys
_MAX_KEY = 64
_MAX_BODY = 256 << 10
_HEALTH_BY_STATUS = {
    "ok": Health.OK,
    "healthy": Health.OK,
    "degraded": Health.DEGRADED,
    "failing": Health.FAILING,
    "unhealthy": Health.FAILING,
}


class Sample(NamedTuple):
    health: Health
    metrics: Mapping[str, MetricValue] = MappingProxyType({})


class MetricsSource(Protocol):
    """Anything that can produce one sample per heartbeat."""

    async def sample(self, device_id: str, seq: int) -> Sample: ...


def _spread(key: bytes, salt: int, low: float, high: float) -> float:
    """A value in [low, high] determined by ``key`` and ``salt`` (CRC-32: seeding
    a ``random.Random`` per heartbeat cost more CPU than the rest of it)."""
    return low + (high - low) * (binascii.crc32(key, salt) / 0xFFFFFFFF)


def synthetic_metrics(device_id: str, seq: int, health: Health) -> Sample:
    """Plausible, deterministic values for (device, seq), so tests can predict them."""
    key = f"{device_id}:{seq}".encode()
    return Sample(
        health=health,
        metrics={
            "cpu": round(_spread(key, 1, 5, 30), 2),
            "mem": round(_spread(key, 2, 100, 250), 1),
            "error_rate": round(_spread(key, 3, 0, 0.01), 4),
            "synthetic": True,
        },
    )


def to_sample(data: Any) -> Sample | None:
    """Keep the scalar fields the heartbeat can carry; None when not a JSON object."""
    if not isinstance(data, dict):
        return None
    metrics: dict[str, MetricValue] = {}
    for key, value in data.items():
        if len(metrics) >= _MAX_METRICS:
            break
        if isinstance(key, str) and len(key) <= _MAX_KEY:
            if value is None or isinstance(value, bool | int | float):
                metrics[key] = value
            elif isinstance(value, str):
                metrics[key] = value[:256]
    status = data.get("status")
    health = (
        _HEALTH_BY_STATUS.get(status, Health.UNKNOWN)
        if isinstance(status, str)
        else Health.UNKNOWN
    )
    return Sample(health=health, metrics=metrics)


class HttpMetrics:
    """GET a metrics URL; synthetic values when it is unset or does not answer."""

    def __init__(self, client: Http, url: str | None, *, timeout: float = 2.0) -> None:
        self._client = client
        self._url = url
        self._timeout = timeout

    async def sample(self, device_id: str, seq: int) -> Sample:
        if self._url is None:
            return synthetic_metrics(device_id, seq, Health.OK)
        try:
            response = await self._client.request(
                "GET",
                self._url,
                headers={"Accept": "application/json"},
                read_timeout=self._timeout,
                deadline=time.monotonic() + self._timeout,
            )
            try:
                if response.status >= 400:
                    raise ValueError(f"HTTP {response.status}")
                body = await read_bounded(response, _MAX_BODY, "metrics")
            finally:
                await response.aclose()
            sample = to_sample(json.loads(body))
        except (HttpError, ValueError) as exc:
            log.debug("metrics from %s unavailable: %s", self._url, exc)
            sample = None
        if sample is None:
            return synthetic_metrics(device_id, seq, Health.DEGRADED)
        return sample
