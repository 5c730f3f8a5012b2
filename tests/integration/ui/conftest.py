"""Fixtures of the web UI tests: one API app (with the UI) for the session."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from fastapi import FastAPI

from tests.integration.api.support import running_app
from xdp47_common.settings import ControlSettings


@pytest.fixture(scope="session")
def ui_settings(db_url: str, amqp_url: str, amqp_namespace: str) -> ControlSettings:
    return ControlSettings(
        db_url=db_url, amqp_url=amqp_url, amqp_namespace=f"{amqp_namespace}_ui"
    )


@pytest.fixture(scope="session")
async def ui_app(ui_settings: ControlSettings) -> AsyncIterator[FastAPI]:
    async with running_app(ui_settings) as application:
        yield application
