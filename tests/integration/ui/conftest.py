"""Fixtures of the web UI tests: one API app (with the UI) for the session."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from fastapi import FastAPI

from tests.integration.api.support import running_app
from tests.support.amqp import drop_namespace
from xdp47_common.settings import ControlSettings

# Small limits, so the upload tests can pass them: an upload above the general
# body limit must still be taken (it has a limit of its own), one above the upload
# limit refused.
MAX_BODY = 32 << 10
MAX_UPLOAD = 64 << 10


@pytest.fixture(scope="session")
def ui_settings(
    db_url: str,
    amqp_url: str,
    amqp_namespace: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> ControlSettings:
    return ControlSettings(
        db_url=db_url,
        amqp_url=amqp_url,
        amqp_namespace=f"{amqp_namespace}_ui",
        max_body_bytes=MAX_BODY,
        max_upload_bytes=MAX_UPLOAD,
        blob_dir=str(tmp_path_factory.mktemp("ui-blobs")),
    )


@pytest.fixture(scope="session")
async def ui_app(ui_settings: ControlSettings) -> AsyncIterator[FastAPI]:
    try:
        async with running_app(ui_settings) as application:
            yield application
    finally:
        await drop_namespace(ui_settings.amqp_url, ui_settings.amqp_namespace)
