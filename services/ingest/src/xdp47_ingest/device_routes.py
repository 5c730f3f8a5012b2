"""The two device endpoints as plain ASGI handlers, and their OpenAPI description.

``POST /api/devices/{device_id}/heartbeat`` and ``GET /api/devices/{device_id}/desired``
are ingest's whole load: every device, every interval. They are served by
``DeviceRoutes`` through ``xdp47_common.web.raw_routes`` (in front of FastAPI,
inside the same request id / metrics / catch-all basics, errors answered exactly
as FastAPI's handlers answer them; the rate limit and body limit applied here
with the middleware's own counters and limit), because
FastAPI's dependency solving, request and response objects cost a device request
more than the rest of ingest's work for it (docs/performance.md). The checks are
the same, in the same order: credential (401), its rate (429, counted by the
credential's hash, which is also the cache key: one check and one hash per
request), device id in the path (422), who the credential belongs to (401
unknown, 403 another device's, 503 database down), then the body (413 over
``XDP47_MAX_BODY_BYTES``, 422) and the publish (503). The OpenAPI document
describes both operations (``xdp47_ingest.openapi``, generated from the models).
Under uvicorn the usual request never reaches these handlers: the device lane
(``xdp47_ingest.device_lane``) answers it in the protocol, and hands everything
unusual to them.
"""

from __future__ import annotations

import re

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect
from starlette.types import Receive, Scope, Send

from xdp47_common.adapters.pg import DATABASE_FAILED
from xdp47_common.bus import PublishFailed
from xdp47_common.clock import utcnow
from xdp47_common.messages import HeartbeatBody
from xdp47_common.messages.wire import heartbeat_json
from xdp47_common.models.base import DEVICE_ID_PATTERN
from xdp47_common.tokens import hash_secret
from xdp47_common.web import (
    RateLimits,
    RawHandler,
    RouteTemplate,
    ServiceUnavailable,
    read_body,
)
from xdp47_common.web.asgi import send_answer
from xdp47_common.web.device_auth import (
    credential_from_header,
    forbidden,
    unauthorized,
)
from xdp47_ingest.deps import Deps
from xdp47_ingest.desired import DeviceView, etag_matches

__all__ = ["DESIRED", "HEARTBEAT", "DeviceRoutes", "not_accepted"]

PREFIX = "/api/devices/"
HEARTBEAT = RouteTemplate(PREFIX + "{device_id}/heartbeat")
DESIRED = RouteTemplate(PREFIX + "{device_id}/desired")
_DEVICE_ID = re.compile(DEVICE_ID_PATTERN)
_JSON = (b"content-type", b"application/json")


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


async def _methods(scope: Scope, send: Send, served: str) -> None:
    """Answer a method other than ``served``: OPTIONS 204, anything else 405,
    both with ``Allow`` (as ``xdp47_common.web.methods`` does for FastAPI's)."""
    allow = f"OPTIONS, {served}"
    if scope["method"] != "OPTIONS":
        raise HTTPException(405, "Method Not Allowed", headers={"Allow": allow})
    await send_answer(send, 204, b"", [(b"allow", allow.encode())])


def not_accepted(failure: PublishFailed, retry_after: int) -> ServiceUnavailable:
    """The 503 of a heartbeat whose batch the broker did not confirm."""
    return ServiceUnavailable(
        f"heartbeat not accepted: {failure}; retry later", retry_after
    )


def _checked_device_id(device_id: str) -> str:
    if _DEVICE_ID.match(device_id) is None:
        raise RequestValidationError(
            [
                {
                    "loc": ("path", "device_id"),
                    "msg": f"String should match pattern '{DEVICE_ID_PATTERN}'",
                    "type": "string_pattern_mismatch",
                }
            ]
        )
    return device_id


class DeviceRoutes:
    """``RawRoutes`` for the device endpoints; ``app.state.deps`` holds what they
    use (set by the lifespan)."""

    def __init__(
        self,
        app: FastAPI,
        *,
        retry_after: int,
        max_body_bytes: int,
        rate_limits: RateLimits | None = None,
    ) -> None:
        self._app = app
        self._retry_after = retry_after
        self._max_body = max_body_bytes
        self._limits = rate_limits if rate_limits and rate_limits.enabled else None
        self._leaves: dict[str, tuple[RouteTemplate, RawHandler]] = {
            "heartbeat": (HEARTBEAT, self.heartbeat),
            "desired": (DESIRED, self.desired),
        }

    def resolve(self, scope: Scope) -> tuple[RouteTemplate, RawHandler] | None:
        path: str = scope["path"]
        if not path.startswith(PREFIX):
            return None
        device_id, _, leaf = path[len(PREFIX) :].partition("/")
        route = self._leaves.get(leaf)
        if not device_id or route is None:
            return None
        # As Starlette does for its routes: the handlers read it from here.
        scope["path_params"] = {"device_id": device_id}
        return route

    async def _authenticate(self, scope: Scope) -> tuple[Deps, DeviceView]:
        credential = credential_from_header(_header(scope, b"authorization"))
        key = hash_secret(credential)
        if self._limits is not None:
            verdict = await self._limits.hit_device(key)
            if verdict is not None:
                raise verdict.error()
        device_id = _checked_device_id(scope["path_params"]["device_id"])
        deps: Deps = self._app.state.deps
        try:
            view = await deps.cache.lookup_hash(key)
        except DATABASE_FAILED as exc:
            raise ServiceUnavailable(
                "the device database is unavailable; retry later", self._retry_after
            ) from exc
        if view is None:
            raise unauthorized("unknown device credential")
        if view.device_id != device_id:
            raise forbidden(device_id)
        return deps, view

    async def heartbeat(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Report the device's whole state; answers its desired state (202)."""
        if scope["method"] != "POST":
            await _methods(scope, send, "POST")
            return
        # Authenticate before reading the body: an anonymous caller learns nothing
        # about the body format, and a 401 costs no parsing.
        deps, view = await self._authenticate(scope)
        try:
            raw = await read_body(scope, receive, self._max_body)
        except ClientDisconnect:
            return  # nobody to answer; nothing was accepted
        try:
            body = HeartbeatBody.model_validate_json(raw)
        except ValidationError as exc:
            raise RequestValidationError(
                [{**e, "loc": ("body", *e["loc"])} for e in exc.errors()]
            ) from exc
        now = utcnow()
        # The body is validated once; what is published is built from it
        # without validating the same fields again.
        try:
            await deps.batcher.submit(
                view.tenant, heartbeat_json(body, view.device_id, now)
            )
        except PublishFailed as exc:
            raise not_accepted(exc, self._retry_after) from exc
        # "update" unless the heartbeat says the device runs the desired artifact.
        await send_answer(
            send, 202, view.answer_json(body.current_artifact_id, now), [_JSON]
        )

    async def desired(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The device's desired state, with a strong ETag (304 when unchanged)."""
        if scope["method"] != "GET":
            await _methods(scope, send, "GET")
            return
        _, view = await self._authenticate(scope)
        etag = view.etag
        headers = [(b"etag", etag.encode()), (b"cache-control", b"no-cache")]
        if etag_matches(_header(scope, b"if-none-match"), etag):
            await send_answer(send, 304, b"", headers)
        else:
            await send_answer(send, 200, view.payload, [_JSON, *headers])
