"""Prometheus metrics: ``/metrics`` and the request counter/latency
(``RequestBasicsMiddleware`` observes every request).

Each app gets its own ``CollectorRegistry`` so that several apps in one process
(tests) do not collide. Paths are labelled by their route template
(``/api/devices/{device_id}``), never the raw path, to bound label cardinality.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
)

from xdp47_common.plumbing_metrics import exposition

__all__ = ["HttpMetrics", "metrics_router"]


class HttpMetrics:
    """The HTTP request metrics of one app."""

    def __init__(self, registry: CollectorRegistry, prefix: str) -> None:
        self.registry = registry
        self.requests = Counter(
            f"{prefix}_http_requests_total",
            "HTTP requests by method, route template and status.",
            ["method", "route", "status"],
            registry=registry,
        )
        self.latency = Histogram(
            f"{prefix}_http_request_duration_seconds",
            "HTTP request latency by method and route template.",
            ["method", "route"],
            registry=registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
        )
        # labels() takes a lock and builds a key on every call: the children of
        # a (method, route) are looked up once (bounded: route templates).
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        """Count one answered request and its latency."""
        key = (method, route, status)
        children = self._children.get(key)
        if children is None:
            children = self._children[key] = (
                self.requests.labels(method, route, str(status)),
                self.latency.labels(method, route),
            )
        children[0].inc()
        children[1].observe(seconds)


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
