"""Which methods a path serves: ``OPTIONS`` answers and 405s that say it exactly.

Starlette answers a method a path does not serve with the ``Allow`` of the first
route that matched the path, though several routes (one per method) share most
paths, and it has no ``OPTIONS`` answer at all. Worse, a custom method route
(``POST /api/rollouts/{id}:start``) also matches the plain item route
(``GET /api/rollouts/{id}``) with ``{id}:start`` as the id, so a ``GET`` of it was
validated as an id and answered 422. This middleware, inside the basics, unites
the methods of every route whose template matches the path, where no path
parameter swallows a ``:`` (no id of XDP47 holds one, so such a match is the
item route misreading a custom method): ``OPTIONS`` answers 204 with that
``Allow``; a method only the misreading route takes answers 405 here; the
router's own 405s (JSON, or the UI's page) go out with that ``Allow``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence

from starlette.exceptions import HTTPException
from starlette.routing import BaseRoute, compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

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


def allowed_methods(table: _Table, path: str) -> tuple[frozenset[str], frozenset[str]]:
    """The methods served at ``path`` (empty: no route matches it), and those
    only a route misreading a custom method (a ``:`` in a parameter) would take.
    """
    served: set[str] = set()
    misread: set[str] = set()
    for regex, methods in table:
        match = regex.match(path)
        if match is None:
            continue
        if any(":" in v for v in match.groupdict().values()):
            misread |= methods
        else:
            served |= methods
    return frozenset(served), frozenset(misread - served)


class MethodsMiddleware:
    """Answers ``OPTIONS`` and methods a custom-method path does not serve from
    the routes of ``routes`` (read at request time: routes added after the
    middleware count too), and puts the whole ``Allow`` on every 405."""

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
        allowed, misread = allowed_methods(self._table, scope["path"])
        method = scope["method"]
        if not allowed or method in allowed:
            await self.app(scope, receive, send)
            return
        allow = ", ".join(sorted(allowed | {"OPTIONS"}))
        if method == "OPTIONS":
            await send_answer(send, 204, b"", [(b"allow", allow.encode())])
            return
        if method in misread:
            # The router would hand it to the item route, which would refuse
            # "{id}:verb" as an id (422): the method is what is wrong.
            status, content, headers = error_answer(
                HTTPException(405, "Method Not Allowed", headers={"Allow": allow})
            )
            await send_json(
                send,
                status,
                content,
                [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()],
            )
            return

        async def send_allow(message: Message) -> None:
            # The router's own 405 (its page or JSON, as the app answers it),
            # with every method of the path instead of one route's.
            if message["type"] == "http.response.start" and message["status"] == 405:
                headers = [
                    (k, v)
                    for k, v in message.get("headers", [])
                    if k.lower() != b"allow"
                ]
                message = {**message, "headers": [*headers, (b"allow", allow.encode())]}
            await send(message)

        await self.app(scope, receive, send_allow)
