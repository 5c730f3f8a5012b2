"""Browser-test fixtures: Debian's chromium through pytest-playwright, and the
control plane as processes (``xdp47-api`` with the UI, ``xdp47-ingest`` and
``xdp47-scheduler``, started by the shared harness in ``tests.support``) on free
127.0.0.1 ports, in development mode with the dev token, on a database of their own
(migrated by ``xdp47-migrate``) and an AMQP namespace of their own (deleted after).
The real scheduler moves the rollouts on as simulated devices report.

Chromium is never downloaded by Playwright: ``scripts/ensure-browser`` installs
Debian's package and the tests launch ``/usr/bin/chromium``.

Playwright's sync API runs its own event loop on the test thread, which would
collide with pytest-asyncio's session loop if it stayed alive: so the browser is
module-scoped (not pytest-playwright's session-scoped ``playwright`` fixture) and is
started only after every async fixture it needs (through ``live_server``).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from tests.support.control_plane import (
    delete_namespace,
    fresh_database,
    start_control_plane,
)
from tests.support.processes import ProcessGroup

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
DEV_TOKEN = "devtoken-browser-tests"
SCREENSHOTS = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"


@dataclass(frozen=True)
class LiveServer:
    url: str
    db_url: str
    amqp_url: str
    namespace: str
    tenant: str
    token: str
    ingest_url: str


@pytest.fixture(scope="session")
def screenshots() -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS


@pytest.fixture(scope="session")
def live_server(
    server_db_url: str,
    amqp_url: str,
    amqp_namespace: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[LiveServer]:
    root = tmp_path_factory.mktemp("server")
    tenant = f"browser-{uuid.uuid4().hex[:8]}"
    namespace = f"{amqp_namespace}_browser"
    with (
        fresh_database(server_db_url, root, "xdp47_browser") as db_url,
        ProcessGroup(root / "logs") as group,
    ):
        try:
            plane = start_control_plane(
                group,
                db_url=db_url,
                amqp_url=amqp_url,
                namespace=namespace,
                blob_dir=root / "blobs",
                tenant=tenant,
                token=DEV_TOKEN,
            )
            yield LiveServer(
                plane.api_url,
                db_url,
                amqp_url,
                namespace,
                tenant,
                DEV_TOKEN,
                plane.ingest_url,
            )
        finally:
            # The browser is gone by now, so no SSE stream holds the api.
            group.stop_all()
            delete_namespace(amqp_url, namespace)


@pytest.fixture(scope="module")
def chromium(live_server: LiveServer) -> Iterator[Browser]:
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: run scripts/ensure-browser")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield browser
        finally:
            browser.close()


# Every wait of a page (locators, expect) gives up after this long.
TIMEOUT_MS = 20_000


@pytest.fixture
def page(chromium: Browser) -> Iterator[Page]:
    """A fresh browser context's page; the test fails on any uncaught page
    error."""
    context = chromium.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    yield page
    context.close()
    assert errors == [], errors
