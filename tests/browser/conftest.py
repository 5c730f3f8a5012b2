"""Browser-test fixtures: Debian's chromium through pytest-playwright, and the API
(with the UI) served by uvicorn in a subprocess on a free 127.0.0.1 port, in
development mode with the dev token, against the session's database and broker.

Chromium is never downloaded by Playwright: ``scripts/ensure-browser`` installs
Debian's package and the tests launch ``/usr/bin/chromium``.

Playwright's sync API runs its own event loop on the test thread, which would
collide with pytest-asyncio's session loop if it stayed alive: so the browser is
module-scoped (not pytest-playwright's session-scoped ``playwright`` fixture) and is
started only after every async fixture it needs (through ``live_server``).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, sync_playwright
from tenacity import Retrying, retry_if_exception_type, stop_after_delay, wait_fixed

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


@pytest.fixture(scope="session")
def screenshots() -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def live_server(
    db_url: str, amqp_url: str, amqp_namespace: str, tmp_path_factory: Any
) -> Iterator[LiveServer]:
    port = _free_port()
    tenant = f"browser-{uuid.uuid4().hex[:8]}"
    namespace = f"{amqp_namespace}_browser"
    env = {
        **os.environ,
        "XDP47_ENV": "development",
        "XDP47_DEV_TOKEN_ENABLED": "true",
        "XDP47_AGENT_TOKEN": DEV_TOKEN,
        "XDP47_DEV_TENANT": tenant,
        "XDP47_DB_URL": db_url,
        "XDP47_AMQP_URL": amqp_url,
        "XDP47_AMQP_NAMESPACE": namespace,
        "XDP47_LISTEN_ADDR": f"127.0.0.1:{port}",
        "XDP47_BLOB_DIR": str(tmp_path_factory.mktemp("blobs")),
    }
    log = (tmp_path_factory.mktemp("server") / "api.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-c", "from xdp47_api.main import main; main()"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for attempt in Retrying(
            stop=stop_after_delay(30),
            wait=wait_fixed(0.2),
            retry=retry_if_exception_type((httpx.HTTPError, AssertionError)),
            reraise=True,
        ):
            with attempt:
                assert process.poll() is None, "the API process exited"
                assert httpx.get(f"{url}/readyz", timeout=2).status_code == 200
        yield LiveServer(url, db_url, amqp_url, namespace, tenant, DEV_TOKEN)
    finally:
        process.terminate()  # the browser is gone by now, so no SSE stream holds it
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


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
