"""Fixtures of the migration tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.conftest import create_database, drop_database
from tests.support.services import unique_name


@pytest.fixture
async def empty_db(server_db_url: str) -> AsyncIterator[str]:
    """A database of its own with no schema, dropped afterwards."""
    name = unique_name("xdp47_mig")
    url = await create_database(server_db_url, name)
    yield url
    await drop_database(server_db_url, name)
