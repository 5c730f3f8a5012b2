"""Prometheus metrics: ``/metrics`` and the request counter/latency
(``RequestBasicsMiddleware`` observes every request).

Each app gets its own ``CollectorRegistry`` so that several apps in one process
(tests) do not collide. Paths are labelled by their route template
(``/api/devices/{device_id}``), never the raw path, to bound label cardinality.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections.abc import Iterator

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry
from prometheus_client.core import (
    CounterMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from xdp47_common.plumbing_metrics import exposition

__all__ = ["LATENCY_BUCKETS", "HttpMetrics", "metrics_router"]

# Upper bounds (seconds) of the request latency histogram's buckets.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5)


class HttpMetrics(Collector):
    """The HTTP request metrics of one app: ``<prefix>_http_requests_total``
    (method, route, status) and ``<prefix>_http_request_duration_seconds``
    (method, route).

    Kept as plain counts and exposed as those two families when the registry
    is collected: every request of ingest is observed here, and the client's
    own ``Counter`` and ``Histogram`` took a lock per value they touched (three
    per request) behind two layers of calls, ~1.4 µs per request against ~0.3
    (docs/performance.md). Observed on the event loop's thread, as every
    request is answered there.
    """

    def __init__(self, registry: CollectorRegistry, prefix: str) -> None:
        self.registry = registry
        self._requests = f"{prefix}_http_requests"
        self._latency = f"{prefix}_http_request_duration_seconds"
        # (method, route, status) -> [answered, created at].
        self._counts: dict[tuple[str, str, int], list[float]] = {}
        # (method, route) -> the count per bucket (the last: +Inf), then the sum
        # and the time it was created.
        self._durations: dict[tuple[str, str], list[float]] = {}
        registry.register(self)

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        """Count one answered request and its latency."""
        key = (method, route, status)
        count = self._counts.get(key)
        if count is None:
            count = self._counts[key] = [0, time.time()]
        count[0] += 1
        durations = self._durations.get((method, route))
        if durations is None:
            durations = self._durations[(method, route)] = [
                *(0 for _ in range(len(LATENCY_BUCKETS) + 2)),
                time.time(),
            ]
        durations[bisect_left(LATENCY_BUCKETS, seconds)] += 1
        durations[-2] += seconds

    def describe(self) -> Iterator[Metric]:
        return self._families(samples=False)

    def collect(self) -> Iterator[Metric]:
        return self._families(samples=True)

    def _families(self, *, samples: bool) -> Iterator[Metric]:
        requests = CounterMetricFamily(
            self._requests,
            "HTTP requests by method, route template and status.",
            labels=["method", "route", "status"],
        )
        latency = HistogramMetricFamily(
            self._latency,
            "HTTP request latency by method and route template.",
            labels=["method", "route"],
        )
        if samples:
            for (method, route, status), (n, created) in list(self._counts.items()):
                requests.add_metric([method, route, str(status)], n, created=created)
            for (method, route), durations in list(self._durations.items()):
                buckets, total = [], 0.0
                for bound, n in zip(
                    (*(str(float(b)) for b in LATENCY_BUCKETS), "+Inf"),
                    durations[:-2],
                    strict=True,
                ):
                    total += n
                    buckets.append((bound, total))
                latency.add_metric([method, route], buckets, durations[-2])
                latency.add_sample(
                    f"{self._latency}_created",
                    {"method": method, "route": route},
                    durations[-1],
                )
        yield requests
        yield latency


def metrics_router(registry: CollectorRegistry) -> APIRouter:
    """A router serving ``registry`` and the shared plumbing metrics at
    ``/metrics`` in the text format."""
    router = APIRouter(tags=["health"])

    @router.get(
        "/metrics",
        summary="Prometheus metrics",
        response_class=Response,
        responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}},
    )
    async def metrics() -> Response:
        return Response(exposition(registry), media_type=CONTENT_TYPE_LATEST)

    return router
