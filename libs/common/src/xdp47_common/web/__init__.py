"""FastAPI helpers shared by the HTTP services (api, ingest). Needs the ``web`` extra.

``install_web_basics`` wires the pieces every service wants: JSON error handlers,
the request id, the body size limit, request metrics, ``/metrics`` and the health
endpoints.
"""

from __future__ import annotations

from collections.abc import Mapping

from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from xdp47_common.web.body_limit import BodySizeLimitMiddleware, BodyTooLarge
from xdp47_common.web.errors import (
    RETRY_AFTER_SECONDS,
    CatchAllMiddleware,
    ErrorBody,
    ServiceUnavailable,
    format_validation_errors,
    install_exception_handlers,
)
from xdp47_common.web.health import Check, HealthStatus, health_router
from xdp47_common.web.metrics import HttpMetrics, MetricsMiddleware, metrics_router
from xdp47_common.web.rate_limit import RateLimitMiddleware, RateLimits
from xdp47_common.web.request_id import (
    REQUEST_ID_HEADER,
    RequestIdMiddleware,
    bind_request_context,
)

__all__ = [
    "REQUEST_ID_HEADER",
    "RETRY_AFTER_SECONDS",
    "BodySizeLimitMiddleware",
    "BodyTooLarge",
    "CatchAllMiddleware",
    "Check",
    "ErrorBody",
    "HealthStatus",
    "HttpMetrics",
    "MetricsMiddleware",
    "RateLimitMiddleware",
    "RateLimits",
    "RequestIdMiddleware",
    "ServiceUnavailable",
    "bind_request_context",
    "format_validation_errors",
    "health_router",
    "install_exception_handlers",
    "install_web_basics",
    "metrics_router",
]


def install_web_basics(
    app: FastAPI,
    *,
    max_body_bytes: int,
    checks: Mapping[str, Check],
    registry: CollectorRegistry | None = None,
    metrics_prefix: str = "xdp47",
    body_limit_overrides: Mapping[str, int] | None = None,
    rate_limits: RateLimits | None = None,
) -> HttpMetrics:
    """Install error handlers, body limit, metrics and health routes on ``app``.

    Args:
        app: the application.
        max_body_bytes: request bodies above this size get 413.
        checks: readiness checks served by ``/readyz``.
        registry: the Prometheus registry; a fresh one when omitted.
        metrics_prefix: prefix of the HTTP metric names.
        body_limit_overrides: exact request paths with a limit of their own
            (a streamed upload route), instead of ``max_body_bytes``.
        rate_limits: per-credential limits (429 with Retry-After); none when
            omitted or disabled.

    Returns:
        The HTTP metrics, whose registry services may add their own metrics to.
    """
    metrics = HttpMetrics(registry or CollectorRegistry(), prefix=metrics_prefix)
    install_exception_handlers(app)
    # Middleware added last runs first. Metrics see the final status of every
    # request, the catch-all turns a bug into a JSON 500 for them, and the size
    # limit answers its own 413 before the catch-all could mistake it for a bug.
    # The request id is outermost: every answer carries it, and every log line
    # of the request (the catch-all's included) has it.
    app.add_middleware(
        BodySizeLimitMiddleware,
        max_body_bytes=max_body_bytes,
        overrides=body_limit_overrides,
    )
    # Outside the size limit: a credential over its rate gets 429 before any byte
    # of its body is read; inside the catch-all, metrics and request id, so the
    # 429 is counted and carries X-Request-ID.
    if rate_limits is not None and rate_limits.enabled:
        app.add_middleware(RateLimitMiddleware, limits=rate_limits)
    app.add_middleware(CatchAllMiddleware)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    app.add_middleware(RequestIdMiddleware)
    app.include_router(health_router(checks))
    app.include_router(metrics_router(metrics.registry))
    return metrics
