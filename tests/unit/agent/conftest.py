"""Fixtures for agent unit tests: fake control plane, artifact server, agents."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.unit.agent.support import (
    ArtifactServer,
    FakeControlPlane,
    Sleeps,
    make_config,
)
from xdp47_agent.agent import Agent
from xdp47_agent.httpx_adapter import HttpxHttp


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def control() -> FakeControlPlane:
    return FakeControlPlane()


@pytest.fixture
async def client(control: FakeControlPlane) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=control) as c:
        yield c


@pytest.fixture
async def server() -> AsyncIterator[ArtifactServer]:
    s = ArtifactServer()
    await s.start()
    yield s
    await s.stop()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    return tmp_path / "state"


AgentFactory = Callable[..., Agent]


@pytest.fixture
def make_agent(
    client: httpx.AsyncClient, clock: FakeClock, sleeps: Sleeps, state_dir: Path
) -> AgentFactory:
    def factory(**overrides: Any) -> Agent:
        fault = overrides.pop("fault", None)
        config = make_config(overrides.pop("state_dir", state_dir), **overrides)
        kwargs: dict[str, Any] = {
            "clock": clock,
            "sleep": sleeps,
            "rng": random.Random(7),
        }
        if fault is not None:
            kwargs["fault"] = fault
        return Agent(config, HttpxHttp(client), **kwargs)

    return factory
