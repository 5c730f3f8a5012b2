"""The ingest HTTP app: heartbeat and desired-state endpoints.

The two device endpoints are plain ASGI handlers (``device_routes``) in front of
FastAPI, which serves health, metrics and the OpenAPI document. The lifespan
owns the PostgreSQL pool (read-only use: identity and desired state, through the
``DesiredCache`` and its LISTEN connection) and the bus: by default an
``AmqpBus`` whose one publisher channel with confirms is shared by every request,
so that confirms pipeline instead of queueing behind a lock;
``create_app(settings, bus=...)`` publishes on a bus the caller owns. Heartbeats
go through a ``HeartbeatBatcher`` (one ``HeartbeatBatch`` message and one confirm
per few milliseconds of heartbeats; with ``XDP47_INGEST_BATCH_MAX=1`` a batch of
one per heartbeat).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import structlog
from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from xdp47_common import tracing
from xdp47_common.adapters.amqp_bus import AmqpBus
from xdp47_common.adapters.objects import links_from_settings
from xdp47_common.adapters.pg import create_pool
from xdp47_common.bus import Bus
from xdp47_common.topology import Topology
from xdp47_common.web import (
    RateLimits,
    RawRoutesFastAPI,
    fastapi_telemetry,
    install_web_basics,
)
from xdp47_ingest.batcher import HeartbeatBatcher
from xdp47_ingest.cache import DesiredCache
from xdp47_ingest.deps import Deps
from xdp47_ingest.device_lane import DeviceLane
from xdp47_ingest.device_routes import DeviceRoutes
from xdp47_ingest.openapi import install_openapi
from xdp47_ingest.settings import IngestSettings

__all__ = ["create_app"]

_log = structlog.get_logger(__name__)


def create_app(settings: IngestSettings, *, bus: Bus | None = None) -> FastAPI:
    """Build the ingest app; connections open in its lifespan.

    Without ``bus`` the lifespan connects an ``AmqpBus`` and closes it at the end;
    a given bus is started (idempotent) and left open for its owner to close.
    """
    topology = bus.topology if bus is not None else Topology(settings.amqp_namespace)
    registry = CollectorRegistry()
    # The device lane, when the app has one (set below, read by the lifespan).
    lane: DeviceLane | None = None

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
        cache = DesiredCache(
            pool,
            db_url=settings.db_url,
            max_entries=settings.ingest_cache_size,
            ttl=settings.ingest_cache_ttl_s,
            db_timeout=settings.publish_timeout,
            registry=registry,
            links=links_from_settings(settings),
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
            await cache.start()
            await publisher.start()
            batcher = HeartbeatBatcher(
                publisher,
                topology,
                max_batch=settings.ingest_batch_max,
                max_wait=settings.ingest_batch_wait_ms / 1000,
            )
            app.state.deps = Deps(pool, publisher, topology, cache, batcher)
            if lane is not None:
                lane.deps = app.state.deps
            try:
                yield
            finally:
                if lane is not None:
                    lane.deps = None
                await batcher.close()
        finally:
            await cache.close()
            if owned:
                await publisher.close()
            await pool.close()
            # Whichever server ran the app: the last batch is published and
            # every connection closed.
            _log.info("ingest stopped")

    app = RawRoutesFastAPI(
        title="XDP47 ingest",
        version="1",
        lifespan=lifespan,
        telemetry=fastapi_telemetry(settings.otel),
    )

    async def db_ready() -> None:
        await app.state.deps.pool.fetchval("SELECT 1")

    async def broker_ready() -> None:
        if not app.state.deps.publisher.is_ready:
            raise ConnectionError("no open channel to the broker")

    rate_limits = RateLimits.from_settings(settings)
    metrics = install_web_basics(
        app,
        max_body_bytes=settings.max_body_bytes,
        checks={"postgres": db_ready, "rabbitmq": broker_ready},
        registry=registry,
        metrics_prefix="xdp47_ingest",
        rate_limits=rate_limits,
        raw_routes=DeviceRoutes(
            app,
            retry_after=settings.ingest_retry_after,
            max_body_bytes=settings.max_body_bytes,
            rate_limits=rate_limits,
        ),
    )
    install_openapi(app)
    if (
        settings.ingest_fast_lane
        and tracing.provider() is None
        and rate_limits.counts_in_process
    ):
        # Read by the server (``server.runner``): uvicorn answers the usual
        # device request in its protocol (``device_lane``).
        lane = app.state.device_lane = DeviceLane(
            metrics=metrics,
            rate_limits=rate_limits,
            max_body_bytes=settings.max_body_bytes,
            retry_after=settings.ingest_retry_after,
        )
    return app
