"""With XDP47_OTEL on, a request's span records its query string with every
credential parameter's value replaced (FastAPI's native tracing)."""

from __future__ import annotations

from typing import Any

import httpx
from fastapi import FastAPI
from opentelemetry.trace import NoOpTracer, Span, TracerProvider

from xdp47_common.web import fastapi_telemetry

SECRET = "devtoken-abcdef0123456789"


class CapturingTracer(NoOpTracer):
    def __init__(self) -> None:
        self.attributes: list[dict[str, Any]] = []

    def start_span(self, name: str, *args: Any, **kwargs: Any) -> Span:
        self.attributes.append(dict(kwargs.get("attributes") or {}))
        return super().start_span(name, *args, **kwargs)


class Provider(TracerProvider):
    """A real provider as far as FastAPI can tell (it skips the no-op one)."""

    def __init__(self, tracer: CapturingTracer) -> None:
        self.tracer = tracer

    def get_tracer(self, *args: Any, **kwargs: Any) -> CapturingTracer:
        return self.tracer


async def test_trace_query_strings_carry_no_credential():
    assert fastapi_telemetry(True) is None
    tracer = CapturingTracer()
    app = FastAPI(
        telemetry={"tracer_provider": Provider(tracer), "metrics": False, "logs": False}
    )

    @app.get("/x")
    async def x() -> dict[str, str]:
        return {}

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        r = await client.get(f"/x?limit=5&access_token={SECRET}&token={SECRET}")
    assert r.status_code == 200
    query = next(a["url.query"] for a in tracer.attributes if "url.query" in a)
    assert "limit=5" in query
    assert "access_token=REDACTED" in query
    assert SECRET not in str(tracer.attributes)
