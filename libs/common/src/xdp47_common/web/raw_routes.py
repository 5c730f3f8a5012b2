"""Plain ASGI routes in front of a FastAPI app, behind the same basic middleware.

FastAPI's routing, dependency solving and response classes cost a device request
more than everything else ingest does for it (docs/performance.md). A service
with a few hot routes lets them answer as plain ASGI handlers: the
``RawRoutesFastAPI`` (in front of FastAPI's whole middleware stack) asks its
``RawRoutes`` whether a request is one of them and, if so, runs the handler
inside its own copy of the layers it is given (``install_web_basics`` gives the
basics: request id, metrics under the route's template, JSON error answers,
catch-all), so the answers, headers and metrics are those of every other route.
Such a handler applies the rate limit and the body limit itself, with the same
functions the middleware uses (``RateLimits.hit_device``, ``read_body``).
Everything else goes to FastAPI.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

from fastapi import FastAPI
from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = ["RawHandler", "RawRoutes", "RawRoutesFastAPI", "RouteTemplate"]

RawHandler = Callable[[Scope, Receive, Send], Awaitable[None]]
Layer = tuple[type[Any], dict[str, Any]]


class RouteTemplate:
    """What ``scope["route"]`` holds for a raw route: its template, for metrics."""

    __slots__ = ("path",)

    def __init__(self, path: str) -> None:
        self.path = path


class RawRoutes(Protocol):
    def resolve(self, scope: Scope) -> tuple[RouteTemplate, RawHandler] | None:
        """The route template and handler of an HTTP request, or None (FastAPI's)."""
        ...


class RawRoutesFastAPI(FastAPI):
    """A FastAPI app that offers every HTTP request to its raw routes first.

    ``install_web_basics(app, raw_routes=...)`` sets them. A raw route is
    dispatched here, before ``FastAPI.__call__`` and Starlette's (two frames
    that every suspension of the request would pass through again), inside its
    own copy of ``layers`` (outermost first); everything else is FastAPI's.
    """

    _raw_routes: RawRoutes | None = None
    _layers: tuple[Layer, ...] = ()
    _wrapped: dict[RawHandler, ASGIApp]

    def set_raw_routes(self, routes: RawRoutes, layers: Sequence[Layer]) -> None:
        self._raw_routes = routes
        self._layers = tuple(layers)
        self._wrapped = {}

    def _stack(self, handler: RawHandler) -> ASGIApp:
        wrapped = self._wrapped.get(handler)
        if wrapped is None:
            wrapped = handler
            for cls, options in reversed(self._layers):
                wrapped = cls(wrapped, **options)
            self._wrapped[handler] = wrapped
        return wrapped

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._raw_routes is not None and scope["type"] == "http":
            found = self._raw_routes.resolve(scope)
            if found is not None:
                template, handler = found
                scope["route"] = template
                await self._stack(handler)(scope, receive, send)
                return
        await super().__call__(scope, receive, send)
