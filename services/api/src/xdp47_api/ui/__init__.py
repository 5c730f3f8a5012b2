"""The operator web UI, server-rendered by the API process under ``/ui``.

``install_ui(app)`` is the one call ``create_app`` makes: it adds the pages, the
vendored static files at ``/ui/static``, the handlers that turn a missing session
into a redirect to sign-in and a ``UiError``, an unknown path or a malformed
parameter under ``/ui`` into the HTML error page (``error_pages``), and a
lifespan (nested in the app's, so the pool and broker exist) that owns the
process's rollout-event hub. See docs/ui.md.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import PlainTextResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException

from xdp47_api.ui.error_pages import http_error, ui_error, validation_error
from xdp47_api.ui.events import RolloutEventHub
from xdp47_api.ui.pages import PAGE_ROUTERS
from xdp47_api.ui.session import SignInRequired, UiError

__all__ = ["install_ui"]

STATIC = Path(__file__).resolve().parent.parent / "static"


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    services = app.state.services
    app.state.ui_started = time.monotonic()
    hub = RolloutEventHub(services.bus, services.topology)
    app.state.ui_events = hub
    try:
        yield
    finally:
        # Open SSE streams watch ``closed`` and end, so shutdown does not wait
        # for browsers to hang up.
        await hub.close()


async def _sign_in(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, SignInRequired)
    target = f"/ui/signin?reason={exc.reason}"
    if request.headers.get("HX-Request"):
        # htmx follows HX-Redirect with a full page load.
        return Response(status_code=204, headers={"HX-Redirect": target})
    if "text/event-stream" in request.headers.get("accept", ""):
        return PlainTextResponse("sign in again", status_code=401)
    return RedirectResponse(target, status_code=303)


def install_ui(app: FastAPI) -> None:
    """Serve the web UI from ``app`` (pages, static files, handlers, lifespan)."""
    router = APIRouter(lifespan=_lifespan)
    for page_router in PAGE_ROUTERS:
        router.include_router(page_router)
    app.include_router(router)
    app.mount("/ui/static", StaticFiles(directory=STATIC), name="ui-static")
    app.add_exception_handler(SignInRequired, _sign_in)
    app.add_exception_handler(UiError, ui_error)
    # Unknown and malformed /ui addresses get the error page too; the handlers
    # answer JSON as before for every other path.
    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(RequestValidationError, validation_error)
