"""The application factory: wires settings, the database pool, the publisher, the
shared web basics and the routes. ``create_app(settings)`` is what ``main`` serves
and what tests drive."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

from fastapi import FastAPI

from xdp47_api.blobs import FsBlobStore
from xdp47_api.repositories import PgTenantRepository
from xdp47_api.routes import ROUTERS
from xdp47_api.routes.artifact_content import UPLOAD_PATH
from xdp47_api.state import Services
from xdp47_api.ui import install_ui
from xdp47_common.adapters.amqp import AmqpPublisher, connect
from xdp47_common.adapters.pg import create_pool
from xdp47_common.settings import ControlSettings
from xdp47_common.topology import Topology
from xdp47_common.web import install_web_basics

__all__ = ["create_app"]

DESCRIPTION = """XDP47 control plane: tenants, API tokens, devices, artifacts,
policies and rollouts. Every `/api` operation needs a bearer token of the caller's
tenant with the scope named in the operation's description; see docs/api.md."""


def create_app(settings: ControlSettings) -> FastAPI:
    """Build the API app; its lifespan opens the pool and the broker connection.

    In development with the dev token enabled, the lifespan also makes sure the dev
    tenant exists, so the seed's scripts work against an empty database.
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            pool = await create_pool(
                settings.db_url,
                min_size=settings.db_pool_min,
                max_size=settings.db_pool_max,
            )
            stack.push_async_callback(pool.close)
            connection = await connect(settings.amqp_url)
            stack.push_async_callback(connection.close)
            topology = Topology(settings.amqp_namespace)
            publisher = AmqpPublisher(
                connection, topology, timeout=settings.publish_timeout
            )
            await publisher.start()
            stack.push_async_callback(publisher.close)
            if settings.dev_token_enabled:
                await PgTenantRepository(pool).ensure(settings.dev_tenant)
            app.state.services = Services(
                settings=settings,
                pool=pool,
                connection=connection,
                publisher=publisher,
                topology=topology,
                blobs=FsBlobStore(settings.blob_dir),
            )
            yield

    app = FastAPI(
        title="XDP47 API",
        version="1.0.0",
        description=DESCRIPTION,
        lifespan=lifespan,
    )

    async def postgres_ready() -> None:
        await app.state.services.pool.fetchval("SELECT 1")

    async def rabbitmq_ready() -> None:
        if app.state.services.connection.is_closed:
            raise ConnectionError("the broker connection is closed")

    install_web_basics(
        app,
        max_body_bytes=settings.max_body_bytes,
        body_limit_overrides={UPLOAD_PATH: settings.max_upload_bytes},
        checks={"postgres": postgres_ready, "rabbitmq": rabbitmq_ready},
    )
    for router in ROUTERS:
        app.include_router(router)
    # The operator web UI under /ui (pages, static files, SSE); see docs/ui.md.
    install_ui(app)
    return app
