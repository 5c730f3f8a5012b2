"""Health endpoints: ``/livez`` and ``/healthz`` (the process answers) and
``/readyz`` (every dependency check passes within its timeout)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel

__all__ = ["Check", "HealthStatus", "health_router"]

Check = Callable[[], Awaitable[None]]
"""An async callable that returns when the dependency is usable and raises if not."""


class HealthStatus(BaseModel):
    status: str
    checks: dict[str, str] = {}


async def _run(check: Check, limit: float) -> str:
    try:
        await asyncio.wait_for(check(), timeout=limit)
    except TimeoutError:
        return f"timed out after {limit:g}s"
    except Exception as exc:  # a failing check is an answer, not an error
        return f"failed: {exc.__class__.__name__}"
    return "ok"


def health_router(checks: Mapping[str, Check], *, timeout: float = 2.0) -> APIRouter:
    """Build the health router.

    Args:
        checks: readiness checks by name (e.g. ``{"postgres": ..., "rabbitmq": ...}``).
        timeout: seconds each check may take.

    Returns:
        A router with ``/livez``, ``/healthz`` and ``/readyz``.
    """
    router = APIRouter(tags=["health"])

    @router.get("/livez", response_model=HealthStatus, summary="Liveness")
    async def livez() -> HealthStatus:
        return HealthStatus(status="ok")

    @router.get("/healthz", response_model=HealthStatus, summary="Liveness (seed)")
    async def healthz() -> HealthStatus:
        return HealthStatus(status="ok")

    @router.get(
        "/readyz",
        response_model=HealthStatus,
        summary="Readiness: every dependency answers",
        responses={503: {"model": HealthStatus, "description": "not ready"}},
    )
    async def readyz() -> JSONResponse:
        names = list(checks)
        results = await asyncio.gather(*(_run(checks[n], timeout) for n in names))
        report = dict(zip(names, results, strict=True))
        ready = all(r == "ok" for r in results)
        body = HealthStatus(status="ok" if ready else "unavailable", checks=report)
        return JSONResponse(
            status_code=200 if ready else 503,
            content=body.model_dump(),
            headers=None if ready else {"Retry-After": "5"},
        )

    return router
