"""Which methods a path serves: ``OPTIONS`` answers and 405s that say it exactly.

Starlette answers a method a path does not serve with the ``Allow`` of the first
route that matched the path, though several routes (one per method) share most
paths, and it has no ``OPTIONS`` answer at all. Worse, a custom method route
(``POST /api/rollouts/{id}:start``) also matches the plain item route
(``GET /api/rollouts/{id}``) with ``{id}:start`` as the id, so a ``GET`` of it was
validated as an id and answered 422. This middleware, inside the basics, unites
the methods of every route whose template matches the path, where no path
parameter swallows a ``:`` (no id of XDP47 holds one, so such a match is the
item route misreading a custom method) and with the fewest parameters (a literal
segment beats a parameter, as for a reader of the API): ``OPTIONS`` answers
204 with that ``Allow``, another method not in it 405 with it. Everything else
goes on.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence

from starlette.exceptions import HTTPException
from starlette.routing import BaseRoute, compile_path
from starlette.types import ASGIApp, Receive, Scope, Send

from xdp47_common.web.asgi import send_answer, send_json
from xdp47_common.web.errors import error_answer

__all__ = ["MethodsMiddleware", "allowed_methods"]

_Table = list[tuple[re.Pattern[str], frozenset[str]]]


def _flat(
    routes: Sequence[BaseRoute], prefix: str = ""
) -> Iterator[tuple[str, set[str]]]:
    """(full path template, methods) of every route, included routers too
    (FastAPI keeps an included router as one entry holding its routes)."""
    for route in routes:
        inner = getattr(route, "original_router", None)
        if inner is not None:
            context = getattr(route, "include_context", None)
            yield from _flat(inner.routes, prefix + getattr(context, "prefix", ""))
            continue
        methods = getattr(route, "methods", None)
        path = getattr(route, "path", None)
        if methods and isinstance(path, str):  # not a mount or websocket
            yield prefix + path, set(methods)


def _table(routes: Sequence[BaseRoute]) -> _Table:
    """One (template regex, methods) per path template, methods united."""
    by_path: dict[str, set[str]] = {}
    for path, methods in _flat(routes):
        by_path.setdefault(path, set()).update(methods)
    return [(compile_path(p)[0], frozenset(m)) for p, m in by_path.items()]


def allowed_methods(table: _Table, path: str) -> frozenset[str]:
    """The methods served at ``path`` (empty: no route matches it).

    Of the templates that match, those with the fewest parameters win: a literal
    segment (``/api/devices/claim``) is that route's, not an id of the item
    route beside it (``/api/devices/{device_id}``).
    """
    best: set[str] = set()
    fewest = -1
    for regex, methods in table:
        match = regex.match(path)
        if match is None:
            continue
        values = match.groupdict().values()
        if any(":" in v for v in values):
            continue
        if fewest == -1 or len(values) < fewest:
            best, fewest = set(methods), len(values)
        elif len(values) == fewest:
            best |= methods
    return frozenset(best)


class MethodsMiddleware:
    """Answers ``OPTIONS`` and unserved methods from the routes of ``routes``
    (read at request time: routes added after the middleware count too)."""

    def __init__(self, app: ASGIApp, *, routes: Sequence[BaseRoute]) -> None:
        self.app = app
        self._routes = routes
        self._table: _Table = []
        self._built_for = -1

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self._built_for != len(self._routes):
            self._table = _table(self._routes)
            self._built_for = len(self._routes)
        allowed = allowed_methods(self._table, scope["path"])
        method = scope["method"]
        if not allowed or method in allowed:
            await self.app(scope, receive, send)
            return
        allow = ", ".join(sorted(allowed | {"OPTIONS"}))
        if method == "OPTIONS":
            await send_answer(send, 204, b"", [(b"allow", allow.encode())])
            return
        status, content, headers = error_answer(
            HTTPException(405, "Method Not Allowed", headers={"Allow": allow})
        )
        await send_json(
            send,
            status,
            content,
            [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()],
        )
