"""The application factory: wires settings, the database pool, the message bus,
the shared web basics and the routes. ``create_app(settings)`` is what ``main``
serves and what tests drive; ``create_app(settings, bus=...)`` runs the API over a
bus the caller owns (the embedded demo shares one ``InMemoryBus``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

from fastapi import FastAPI

from xdp47_api.acting import ActorScope
from xdp47_api.api_docs import install_api_docs
from xdp47_api.blobs import BlobStore, FsBlobStore
from xdp47_api.blobs_s3 import S3BlobStore
from xdp47_api.repositories.registry import Repositories
from xdp47_api.routes import ROUTERS
from xdp47_api.routes.artifact_content import UPLOAD_PATH
from xdp47_api.state import Services
from xdp47_api.ui import install_ui
from xdp47_api.ui.pages.artifact_upload import UPLOAD_FORM_OVERHEAD
from xdp47_api.ui.pages.artifact_upload import UPLOAD_PATH as UI_UPLOAD_PATH
from xdp47_common.adapters.amqp_bus import AmqpBus
from xdp47_common.adapters.objects import s3_store
from xdp47_common.adapters.pg import create_pool
from xdp47_common.bus import Bus
from xdp47_common.settings import ControlSettings
from xdp47_common.topology import Topology
from xdp47_common.web import RateLimits, fastapi_telemetry, install_web_basics

__all__ = ["blob_store", "create_app"]

DESCRIPTION = """XDP47 control plane: tenants, API tokens, devices, artifacts,
policies and rollouts. Every `/api` operation needs a bearer token of the caller's
tenant with the scope named in the operation's description; see docs/api.md."""


def blob_store(settings: ControlSettings) -> BlobStore:
    """The artifact store ``XDP47_BLOB_STORE`` names (docs/deploy.md)."""
    if settings.blob_store == "s3":
        return S3BlobStore(
            s3_store(settings),
            prefix=settings.s3_prefix,
            part_size=settings.s3_part_size,
            concurrency=settings.s3_upload_concurrency,
        )
    return FsBlobStore(settings.blob_dir)


def create_app(settings: ControlSettings, *, bus: Bus | None = None) -> FastAPI:
    """Build the API app; its lifespan opens the pool and the bus.

    Without ``bus`` the lifespan connects an ``AmqpBus`` to ``XDP47_AMQP_URL`` and
    closes it at the end; a given bus is started (idempotent) but left open: its
    owner closes it.

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
            the_bus: Bus
            if bus is None:
                the_bus = AmqpBus(
                    settings.amqp_url,
                    Topology(settings.amqp_namespace),
                    publish_timeout=settings.publish_timeout,
                )
                stack.push_async_callback(the_bus.close)
            else:
                the_bus = bus
            await the_bus.start()
            repos = Repositories(pool)
            if settings.dev_token_enabled:
                await repos.tenants.ensure(settings.dev_tenant)
            app.state.services = Services(
                settings=settings,
                repos=repos,
                bus=the_bus,
                topology=the_bus.topology,
                blobs=blob_store(settings),
            )
            yield

    app = FastAPI(
        title="XDP47 API",
        version="1.0.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        telemetry=fastapi_telemetry(settings.otel),
        # /docs and /redoc come from install_api_docs, with local assets.
        docs_url=None,
        redoc_url=None,
    )
    install_api_docs(app)

    async def postgres_ready() -> None:
        await app.state.services.repos.ping()

    async def rabbitmq_ready() -> None:
        if not app.state.services.bus.is_ready:
            raise ConnectionError("the broker connection is closed")

    async def artifacts_ready() -> None:
        await app.state.services.blobs.probe()

    install_web_basics(
        app,
        max_body_bytes=settings.max_body_bytes,
        metrics_prefix="xdp47_api",
        body_limit_overrides={
            UPLOAD_PATH: settings.max_upload_bytes,
            # The UI's upload form: the file plus its text fields and framing;
            # the file itself is held to max_upload_bytes by the form's handler.
            UI_UPLOAD_PATH: settings.max_upload_bytes + UPLOAD_FORM_OVERHEAD,
        },
        rate_limits=RateLimits.from_settings(settings),
        checks={
            "postgres": postgres_ready,
            "rabbitmq": rabbitmq_ready,
            # Uploads fail on a store that cannot be written: not ready then.
            "artifacts": artifacts_ready,
        },
    )
    # Each request names its own actor for the audit trail (xdp47_api.acting).
    app.add_middleware(ActorScope)
    for router in ROUTERS:
        app.include_router(router)
    # The operator web UI under /ui (pages, static files, SSE); see docs/ui.md.
    install_ui(app)
    return app
