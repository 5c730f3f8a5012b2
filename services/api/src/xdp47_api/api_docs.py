"""The interactive API documentation, ``/docs`` (Swagger UI) and ``/redoc``
(ReDoc), served with their scripts and styles from this process.

FastAPI's own pages load Swagger UI, ReDoc, a favicon and Google Fonts from CDNs,
so on an air-gapped control plane they stay blank. The ``fastapi-offline`` package
ships those builds (Swagger UI 5, ReDoc 2) as static files; they are mounted at
``/docs/static`` and the pages refer to nothing else. Swagger UI's online spec
validator is switched off for the same reason: it would send the schema to
another host.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

__all__ = ["ASSETS_URL", "DOCS_URL", "REDOC_URL", "install_api_docs"]

DOCS_URL = "/docs"
REDOC_URL = "/redoc"
ASSETS_URL = "/docs/static"
# The package's data folder; a release that moved it fails the docs tests.
ASSETS = Path(str(files("fastapi_offline") / "static"))
# FastAPI's pages start the viewers with an inline script; ReDoc searches in a
# blob: worker and draws inline styles.
CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; "
    "style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "worker-src 'self' blob:; connect-src 'self'; frame-ancestors 'none'; "
    "base-uri 'none'; object-src 'none'"
)


def _local_only(page: HTMLResponse) -> HTMLResponse:
    page.headers["Content-Security-Policy"] = CSP
    return page


def install_api_docs(app: FastAPI) -> None:
    """Serve ``/docs`` and ``/redoc`` from local assets; ``app`` must be created
    with ``docs_url=None, redoc_url=None`` so FastAPI adds no CDN pages."""
    openapi_url = app.openapi_url or "/openapi.json"
    oauth2_redirect_url = app.swagger_ui_oauth2_redirect_url
    favicon = f"{ASSETS_URL}/favicon.png"
    app.mount(ASSETS_URL, StaticFiles(directory=ASSETS), name="api-docs-assets")

    @app.get(DOCS_URL, include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return _local_only(
            get_swagger_ui_html(
                openapi_url=openapi_url,
                title=f"{app.title} - Swagger UI",
                swagger_js_url=f"{ASSETS_URL}/swagger-ui-bundle.js",
                swagger_css_url=f"{ASSETS_URL}/swagger-ui.css",
                swagger_favicon_url=favicon,
                oauth2_redirect_url=oauth2_redirect_url,
                swagger_ui_parameters={
                    **(app.swagger_ui_parameters or {}),
                    "validatorUrl": None,
                },
            )
        )

    if oauth2_redirect_url:

        @app.get(oauth2_redirect_url, include_in_schema=False)
        async def swagger_ui_redirect() -> HTMLResponse:
            return get_swagger_ui_oauth2_redirect_html()

    @app.get(REDOC_URL, include_in_schema=False)
    async def redoc() -> HTMLResponse:
        return _local_only(
            get_redoc_html(
                openapi_url=openapi_url,
                title=f"{app.title} - ReDoc",
                redoc_js_url=f"{ASSETS_URL}/redoc.standalone.js",
                redoc_favicon_url=favicon,
                with_google_fonts=False,
            )
        )
