"""Messaging test fixtures: one robust connection, a fresh topology per test."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aio_pika.abc import AbstractRobustConnection

from tests.support.amqp import declared
from xdp47_common.adapters.amqp import connect
from xdp47_common.topology import Topology


@pytest.fixture(scope="module")
async def connection(amqp_url: str) -> AsyncIterator[AbstractRobustConnection]:
    conn = await connect(amqp_url)
    yield conn
    await conn.close()


@pytest.fixture
async def topology(
    connection: AbstractRobustConnection, amqp_namespace: str
) -> AsyncIterator[Topology]:
    async with declared(connection, amqp_namespace) as t:
        yield t
