"""Fixtures of the hostile-input suite: a database of its own, two tenants with
data and a token each, apps with chosen settings, and the figure lines.

Every test here records its figure with ``figure("...")``; the lines are printed
in the terminal summary (``== figures ==``) so a CI log shows them, pass or fail.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Callable
from typing import Any

import asyncpg
import pytest

from tests.conftest import migrated_database
from tests.support import figures
from xdp47_common.adapters.pg import create_pool


@pytest.fixture(scope="session")
def figure() -> Callable[[str], None]:
    return functools.partial(figures.record, "figures")


@pytest.fixture(scope="session")
async def security_db_url(server_db_url: str) -> AsyncIterator[str]:
    """A fresh migrated database: the fuzzer creates tenants and tokens at will,
    which no other suite should see."""
    async with migrated_database(server_db_url, "xdp47_sec") as url:
        yield url


@pytest.fixture(scope="session")
async def security_pool(security_db_url: str) -> AsyncIterator[asyncpg.Pool[Any]]:
    p = await create_pool(security_db_url, min_size=1, max_size=4)
    yield p
    await p.close()
