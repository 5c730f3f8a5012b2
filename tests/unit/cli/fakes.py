"""A scripted stand-in for the XDP47 API, served through httpx.MockTransport, and
the helpers to run the CLI in-process against it."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
from typer.testing import CliRunner, Result

from xdp47_cli.main import app
from xdp47_cli.runtime import Runtime

NOW = "2025-01-01T00:00:00Z"
TENANT = "acme"

Handler = Callable[[httpx.Request], httpx.Response]


def rollout(status: str = "running", **over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": str(uuid.UUID(int=7)),
        "tenant": TENANT,
        "name": "r",
        "artifact_id": str(uuid.UUID(int=1)),
        "policy_id": None,
        "selector": {},
        "channel": "stable",
        "waves": 2,
        "wave_percentages": None,
        "status": status,
        "reason": None,
        "current_wave": 1,
        "created_at": NOW,
        "started_at": NOW,
        "finished_at": None,
    }
    return base | over


def run(wave: int, **over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "rollout_id": str(uuid.UUID(int=7)),
        "wave": wave,
        "attempt": 1,
        "eligible": 4,
        "succeeded": 0,
        "failed": 0,
        "skipped": 0,
        "started_at": NOW,
        "finished_at": None,
        "outcome": None,
        "reason": None,
    }
    return base | over


def tenant(ident: str) -> dict[str, Any]:
    return {"id": ident, "name": ident, "created_at": NOW}


def json_response(status: int, body: Any, **headers: str) -> httpx.Response:
    return httpx.Response(status, json=body, headers=headers)


@dataclass
class FakeClock:
    """Time that moves only when the CLI sleeps."""

    now: float = 0.0
    sleeps: list[float] = field(default_factory=list)

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@dataclass
class Recorder:
    """Remembers every request the CLI sent."""

    handler: Handler
    requests: list[httpx.Request] = field(default_factory=list)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.handler(request)

    def bodies(self) -> Iterator[Any]:
        for request in self.requests:
            if request.content:
                yield json.loads(request.content)


def invoke(
    handler: Handler,
    *args: str,
    clock: FakeClock | None = None,
    url: str = "http://api.test",
    token: str = "xdp47t_" + "a" * 49,
    input: str | None = None,
) -> Result:
    clock = clock or FakeClock()
    runtime = Runtime(
        url=url,
        token=token,
        transport=httpx.MockTransport(handler),
        clock=clock,
        sleep=clock.sleep,
    )
    return CliRunner().invoke(app, list(args), obj=runtime, input=input)
