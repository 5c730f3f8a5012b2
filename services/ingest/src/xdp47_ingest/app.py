"""The ingest HTTP app: heartbeat and desired-state endpoints.

The lifespan owns the PostgreSQL pool (read-only use: identity and desired state)
and the bus: by default an ``AmqpBus`` whose one publisher channel with confirms
is shared by every request, so that confirms pipeline instead of queueing behind
a lock; ``create_app(settings, bus=...)`` publishes on a bus the caller owns.
Heartbeats go through a ``HeartbeatBatcher`` (one ``HeartbeatBatch`` message and
one confirm per few milliseconds of heartbeats) unless ``XDP47_INGEST_BATCH_MAX``
is 1, which publishes each as its own ``HeartbeatReceived``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Annotated, Any

import asyncpg
from fastapi import Depends, FastAPI, Path, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from xdp47_common.adapters.amqp_bus import AmqpBus
from xdp47_common.adapters.pg import create_pool
from xdp47_common.bus import Bus, PublishFailed
from xdp47_common.clock import utcnow
from xdp47_common.messages import (
    DesiredState,
    Heartbeat,
    HeartbeatBody,
    HeartbeatReceived,
)
from xdp47_common.models.base import DEVICE_ID_PATTERN
from xdp47_common.topology import Topology
from xdp47_common.web import (
    ErrorBody,
    RateLimits,
    ServiceUnavailable,
    install_web_basics,
)
from xdp47_common.web.device_auth import device_credential, forbidden, unauthorized
from xdp47_ingest.batcher import HeartbeatBatcher
from xdp47_ingest.desired import DeviceView, etag_matches, etag_of, read_device
from xdp47_ingest.settings import IngestSettings

__all__ = ["create_app"]

DeviceIdPath = Annotated[str, Path(pattern=DEVICE_ID_PATTERN)]
Credential = Annotated[str, Depends(device_credential)]


@dataclass
class _Deps:
    pool: asyncpg.Pool[Any]
    publisher: Bus
    topology: Topology
    batcher: HeartbeatBatcher | None = None


async def _deps(request: Request) -> _Deps:
    # async: FastAPI would run a plain ``def`` dependency in a worker thread.
    d: _Deps = request.app.state.deps
    return d


# Module level: FastAPI resolves these annotations from the module's globals.
Deps = Annotated[_Deps, Depends(_deps)]

_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "missing, malformed or unknown"},
    403: {"model": ErrorBody, "description": "the credential is another device's"},
    413: {"model": ErrorBody, "description": "body over XDP47_MAX_BODY_BYTES"},
    422: {"model": ErrorBody, "description": "invalid body; names the field"},
    429: {"model": ErrorBody, "description": "over the device rate; Retry-After"},
    503: {"model": ErrorBody, "description": "broker or database down; Retry-After"},
}


def create_app(settings: IngestSettings, *, bus: Bus | None = None) -> FastAPI:
    """Build the ingest app; connections open in its lifespan.

    Without ``bus`` the lifespan connects an ``AmqpBus`` and closes it at the end;
    a given bus is started (idempotent) and left open for its owner to close.
    """
    topology = bus.topology if bus is not None else Topology(settings.amqp_namespace)
    retry_after = settings.ingest_retry_after
    db_timeout = settings.publish_timeout

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pool = await create_pool(
            settings.db_url,
            min_size=settings.db_pool_min,
            max_size=settings.db_pool_max,
            # Single read statements only: no session state to reset, and the
            # reset would be a second round trip on every request.
            reset=False,
        )
        owned = bus is None
        publisher: Bus = (
            AmqpBus(
                settings.amqp_url, topology, publish_timeout=settings.publish_timeout
            )
            if bus is None
            else bus
        )
        try:
            await publisher.start()
            batcher = (
                HeartbeatBatcher(
                    publisher,
                    topology,
                    max_batch=settings.ingest_batch_max,
                    max_wait=settings.ingest_batch_wait_ms / 1000,
                )
                if settings.ingest_batch_max > 1
                else None
            )
            app.state.deps = _Deps(pool, publisher, topology, batcher)
            try:
                yield
            finally:
                if batcher is not None:
                    await batcher.close()
        finally:
            if owned:
                await publisher.close()
            await pool.close()

    app = FastAPI(title="XDP47 ingest", version="1", lifespan=lifespan)

    async def db_ready() -> None:
        await app.state.deps.pool.fetchval("SELECT 1")

    async def broker_ready() -> None:
        if not app.state.deps.publisher.is_ready:
            raise ConnectionError("no open channel to the broker")

    install_web_basics(
        app,
        max_body_bytes=settings.max_body_bytes,
        checks={"postgres": db_ready, "rabbitmq": broker_ready},
        metrics_prefix="xdp47_ingest",
        rate_limits=RateLimits.from_settings(settings),
    )

    async def authenticate(d: _Deps, credential: str, device_id: str) -> DeviceView:
        try:
            view = await read_device(d.pool, credential, db_timeout=db_timeout)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise ServiceUnavailable(
                "the device database is unavailable; retry later", retry_after
            ) from exc
        if view is None:
            raise unauthorized("unknown device credential")
        if view.device_id != device_id:
            raise forbidden(device_id)
        return view

    @app.post(
        "/api/devices/{device_id}/heartbeat",
        status_code=202,
        response_model=DesiredState,
        responses=_ERRORS,
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {"schema": HeartbeatBody.model_json_schema()}
                },
            }
        },
        summary="Report the device's whole state; answers its desired state",
    )
    async def heartbeat(
        device_id: DeviceIdPath,
        request: Request,
        credential: Credential,
        d: Deps,
    ) -> Response:
        # Authenticate before reading the body: an anonymous caller learns nothing
        # about the body format, and a 401 costs no parsing.
        view = await authenticate(d, credential, device_id)
        try:
            body = HeartbeatBody.model_validate_json(await request.body())
        except ValidationError as exc:
            raise RequestValidationError(
                [{**e, "loc": ("body", *e["loc"])} for e in exc.errors()]
            ) from exc
        now = utcnow()
        # The body is validated once; the published copy is built without
        # validating the same fields again.
        beat = Heartbeat.model_construct(
            **dict(body), device_id=view.device_id, received_at=now
        )
        try:
            if d.batcher is not None:
                await d.batcher.submit(view.tenant, beat)
            else:
                await d.publisher.publish(
                    d.topology.telemetry,
                    d.topology.heartbeat_key(view.tenant),
                    HeartbeatReceived(
                        tenant=view.tenant, occurred_at=now, heartbeat=beat
                    ),
                )
        except PublishFailed as exc:
            raise ServiceUnavailable(
                f"heartbeat not accepted: {exc}; retry later", retry_after
            ) from exc
        answer = view.desired.model_copy(update={"server_time": now})
        return Response(
            answer.model_dump_json(), status_code=202, media_type="application/json"
        )

    @app.get(
        "/api/devices/{device_id}/desired",
        response_model=DesiredState,
        responses={**_ERRORS, 304: {"description": "unchanged (If-None-Match)"}},
        summary="The device's desired state, with a strong ETag",
    )
    async def desired(
        device_id: DeviceIdPath,
        request: Request,
        credential: Credential,
        d: Deps,
    ) -> Response:
        view = await authenticate(d, credential, device_id)
        payload = view.desired.model_dump_json().encode()
        etag = etag_of(payload)
        headers = {"ETag": etag, "Cache-Control": "no-cache"}
        if etag_matches(request.headers.get("if-none-match"), etag):
            return Response(status_code=304, headers=headers)
        return Response(payload, media_type="application/json", headers=headers)

    return app
