"""FastAPI helpers shared by the HTTP services (api, ingest). Needs the ``web`` extra.

``install_web_basics`` wires the pieces every service wants: JSON error handlers,
the request id, the body size limit, request metrics, ``/metrics`` and the health
endpoints.
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping
from typing import Any

from fastapi import FastAPI
from fastapi.telemetry import TelemetryConfig
from prometheus_client import CollectorRegistry

from xdp47_common import tracing
from xdp47_common.redact import SENSITIVE_QUERY_PARAMETERS
from xdp47_common.web.basics import RequestBasicsMiddleware
from xdp47_common.web.body_limit import (
    BodySizeLimitMiddleware,
    BodyTooLarge,
    read_body,
)
from xdp47_common.web.errors import (
    RETRY_AFTER_SECONDS,
    ErrorBody,
    ServiceUnavailable,
    answer_error,
    error_answer,
    format_validation_errors,
    install_exception_handlers,
)
from xdp47_common.web.health import Check, HealthStatus, health_router
from xdp47_common.web.methods import MethodsMiddleware
from xdp47_common.web.metrics import HttpMetrics, metrics_router
from xdp47_common.web.rate_limit import RateLimitMiddleware, RateLimits, RateVerdict
from xdp47_common.web.raw_routes import (
    RawHandler,
    RawRoutes,
    RawRoutesFastAPI,
    RouteTemplate,
)
from xdp47_common.web.request_id import (
    REQUEST_ID_HEADER,
    bind_request_context,
    request_id_of,
)
from xdp47_common.web.server_span import RawRouteSpan

__all__ = [
    "REQUEST_ID_HEADER",
    "RETRY_AFTER_SECONDS",
    "BodySizeLimitMiddleware",
    "BodyTooLarge",
    "Check",
    "ErrorBody",
    "HealthStatus",
    "HttpMetrics",
    "RateLimitMiddleware",
    "RateLimits",
    "RateVerdict",
    "RawHandler",
    "RawRoutes",
    "RawRoutesFastAPI",
    "RequestBasicsMiddleware",
    "RouteTemplate",
    "ServiceUnavailable",
    "answer_error",
    "bind_request_context",
    "error_answer",
    "fastapi_telemetry",
    "format_validation_errors",
    "health_router",
    "install_exception_handlers",
    "install_web_basics",
    "metrics_router",
    "read_body",
    "request_id_of",
]


def fastapi_telemetry(enabled: bool) -> TelemetryConfig | None:
    """``FastAPI(telemetry=...)`` for ``XDP47_OTEL``: FastAPI's defaults when
    enabled; otherwise tracing, metrics and logs off, so that a request does not
    pay for looking up providers nobody configured (Prometheus serves metrics).
    With tracing on (``xdp47_common.tracing``, the ``OTEL_*`` variables) requests
    are traced through its provider, except the probes and ``/metrics``.

    Enabled, a span records the query string with the values of FastAPI's
    sensitive parameters (presigned-URL signatures) replaced; XDP47's credential
    parameters (``access_token``, ``token`` …) are added to that set, so a token
    a client put in a URL never reaches a trace.
    """
    tracer_provider = tracing.provider()
    if enabled or tracer_provider is not None:
        _redact_trace_queries()
    if tracer_provider is not None:
        return {
            "tracer_provider": tracer_provider,
            "metrics": enabled,
            "logs": enabled,
            "exclude": _untraced,
        }
    if enabled:
        return None
    return {"tracing": False, "metrics": False, "logs": False}


_UNTRACED_PATHS = frozenset({"/metrics", "/healthz", "/readyz", "/livez"})


def _untraced(scope: MutableMapping[str, Any]) -> bool:
    return scope.get("path") in _UNTRACED_PATHS


def _raw_route_layers(basics: tuple[type[Any], dict[str, Any]]) -> list[Any]:
    """The layers of a raw route: the basics, inside a server span named by the
    route template while tracing is on (``server_span``)."""
    tracer_provider = tracing.provider()
    if tracer_provider is None:
        return [basics]
    return [(RawRouteSpan, {"tracer_provider": tracer_provider}), basics]


def _redact_trace_queries() -> None:
    # FastAPI reads this module-level set on every request (private; checked by
    # tests/unit/common/test_redact_traces.py against the installed FastAPI).
    from fastapi.telemetry import _asgi

    _asgi._SENSITIVE_QUERY_PARAMETERS = (
        _asgi._SENSITIVE_QUERY_PARAMETERS | SENSITIVE_QUERY_PARAMETERS
    )


def install_web_basics(
    app: FastAPI,
    *,
    max_body_bytes: int,
    checks: Mapping[str, Check],
    registry: CollectorRegistry | None = None,
    metrics_prefix: str,
    body_limit_overrides: Mapping[str, int] | None = None,
    rate_limits: RateLimits | None = None,
    raw_routes: RawRoutes | None = None,
) -> HttpMetrics:
    """Install error handlers, body limit, metrics and health routes on ``app``.

    Args:
        app: the application.
        max_body_bytes: request bodies above this size get 413.
        checks: readiness checks served by ``/readyz``.
        registry: the Prometheus registry; a fresh one when omitted.
        metrics_prefix: prefix of the HTTP metric names, ``xdp47_<service>``.
        body_limit_overrides: exact request paths with a limit of their own
            (a streamed upload route), instead of ``max_body_bytes``.
        rate_limits: per-credential limits (429 with Retry-After); none when
            omitted or disabled.
        raw_routes: hot routes served as plain ASGI handlers, in front of
            FastAPI and inside the same basics (``raw_routes`` module); such a
            handler applies the rate limit and body limit itself.

    Returns:
        The HTTP metrics, whose registry services may add their own metrics to.
    """
    metrics = HttpMetrics(registry or CollectorRegistry(), prefix=metrics_prefix)
    install_exception_handlers(app)
    # Outermost first. The basics (request id, metrics, JSON errors, catch-all)
    # see every request and its final status. A credential over its rate gets
    # 429 before any byte of its body is read, inside the basics, so the 429 is
    # counted and carries X-Request-ID. The size limit answers its own 413.
    basics: tuple[type[Any], dict[str, Any]] = (
        RequestBasicsMiddleware,
        {"metrics": metrics},
    )
    layers = [basics]
    if rate_limits is not None and rate_limits.enabled:
        layers.append((RateLimitMiddleware, {"limits": rate_limits}))
    layers.append(
        (
            BodySizeLimitMiddleware,
            {"max_body_bytes": max_body_bytes, "overrides": body_limit_overrides},
        )
    )
    # Innermost: OPTIONS and unserved methods answered from all of a path's
    # routes (read at request time, so routes added later count too).
    layers.append((MethodsMiddleware, {"routes": app.router.routes}))
    # Middleware added last runs first.
    for cls, options in reversed(layers):
        app.add_middleware(cls, **options)
    if raw_routes is not None:
        # In front of the whole stack FastAPI builds (its server-error, body
        # limit and telemetry layers included): a raw route passes only through
        # its own copy of the basics, and counts its credential and limits its
        # body itself (``RateLimits.hit_device``, ``read_body``): one check and
        # one hash of the credential, and two frames fewer on every suspension.
        if not isinstance(app, RawRoutesFastAPI):
            raise TypeError("raw routes need a RawRoutesFastAPI app")
        app.set_raw_routes(raw_routes, _raw_route_layers(basics))
    app.include_router(health_router(checks))
    app.include_router(metrics_router(metrics.registry))
    return metrics
