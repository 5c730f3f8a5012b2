"""A raw route's server span is decided before it is built: a dropped request
runs under a non-recording context that keeps work under it unrecorded, a
sampled one gets the span with the very trace id the sampler accepted, and the
decisions follow the configured ratio."""

from __future__ import annotations

from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
    InMemorySpanExporter,
)
from opentelemetry.sdk.trace.sampling import (
    ParentBasedTraceIdRatio,
    Sampler,
    TraceIdRatioBased,
)
from opentelemetry.trace import SpanKind
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from xdp47_common import tracing
from xdp47_common.trace_sampling import PresetTraceIds, server_sampling
from xdp47_common.web import RouteTemplate
from xdp47_common.web.server_span import RawRouteSpan

ROUTE = "/api/devices/{device_id}/heartbeat"
NAME = f"POST {ROUTE}"


def _provider(sampler: Sampler) -> tuple[TracerProvider, InMemorySpanExporter]:
    spans = InMemorySpanExporter()
    provider = TracerProvider(sampler=sampler, id_generator=PresetTraceIds())
    provider.add_span_processor(SimpleSpanProcessor(spans))
    return provider, spans


def test_parent_based_keeps_its_root_sampler_where_the_fast_path_reads_it():
    assert isinstance(
        getattr(ParentBasedTraceIdRatio(0.01), "_root", None), TraceIdRatioBased
    )


def test_only_the_provider_configure_builds_gets_the_early_decision():
    assert server_sampling(TracerProvider()) is None
    assert server_sampling(trace.NoOpTracerProvider()) is None


@pytest.mark.parametrize(
    "sampler",
    [ParentBasedTraceIdRatio(0.3), TraceIdRatioBased(0.3)],
    ids=["parentbased_traceidratio", "traceidratio"],
)
def test_root_decisions_follow_the_ratio_and_hold_when_the_span_starts(
    sampler: Sampler,
):
    provider, spans = _provider(sampler)
    decide = server_sampling(provider)
    assert decide is not None
    tracer = provider.get_tracer("t")
    sampled = 0
    for _ in range(2000):
        dropped = decide(None, NAME)
        if dropped is None:
            sampled += 1
            span = tracer.start_span(NAME, kind=SpanKind.SERVER)
            # The sampler already said yes to this trace id: it says so again.
            assert span.is_recording()
            span.end()
        else:
            current = trace.get_current_span(dropped)
            assert not current.is_recording()
            assert not current.get_span_context().trace_flags.sampled
            # Work under it is not recorded either, whatever the sampler kind.
            child = tracer.start_span("SELECT", context=dropped)
            assert not child.is_recording()
            child.end()
    assert 450 <= sampled <= 750  # 30 % of 2000, far outside chance either side
    assert len(spans.get_finished_spans()) == sampled


def test_a_remote_parent_decides_and_its_trace_continues():
    provider, spans = _provider(ParentBasedTraceIdRatio(0.0))
    decide = server_sampling(provider)
    assert decide is not None
    w3c = TraceContextTextMapPropagator()
    trace_id = 0x0AF7651916CD43DD8448EB211C80319C
    sampled = w3c.extract({"traceparent": f"00-{trace_id:032x}-b7ad6b7169203331-01"})
    assert decide(sampled, NAME) is None
    unsampled = w3c.extract({"traceparent": f"00-{trace_id:032x}-b7ad6b7169203331-00"})
    dropped = decide(unsampled, NAME)
    assert dropped is not None
    context = trace.get_current_span(dropped).get_span_context()
    assert context.trace_id == trace_id
    assert not context.trace_flags.sampled
    assert spans.get_finished_spans() == ()


async def _serve(layer: RawRouteSpan, headers: list[tuple[bytes, bytes]]) -> Any:
    seen: dict[str, Any] = {}

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen["span"] = trace.get_current_span()
        await send({"type": "http.response.start", "status": 202, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    layer.app = app
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/api/devices/d1/heartbeat",
        "headers": headers,
        "route": RouteTemplate(ROUTE),
    }

    async def receive() -> Any:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Any) -> None:
        return None

    await layer(scope, receive, send)
    return seen["span"]


async def test_the_raw_route_span_records_only_what_is_sampled():
    never, none_spans = _provider(ParentBasedTraceIdRatio(0.0))
    handler_span = await _serve(RawRouteSpan(None, tracer_provider=never), [])  # type: ignore[arg-type]
    assert not handler_span.get_span_context().trace_flags.sampled
    assert trace.get_current_span() is trace.INVALID_SPAN  # detached again
    assert none_spans.get_finished_spans() == ()

    always, spans = _provider(ParentBasedTraceIdRatio(1.0))
    handler_span = await _serve(RawRouteSpan(None, tracer_provider=always), [])  # type: ignore[arg-type]
    assert handler_span.get_span_context().trace_flags.sampled
    (span,) = spans.get_finished_spans()
    assert span.name == NAME
    assert span.kind is SpanKind.SERVER
    assert span.attributes is not None
    assert span.attributes["http.response.status_code"] == 202


def test_an_unsampled_batch_is_published_without_a_span_or_headers():
    spans = InMemorySpanExporter()
    assert tracing.configure("t", exporter=spans, set_global=False)
    try:
        headers: dict[str, Any] = {}
        with tracing.carrying([]), tracing.publishing("x", "k", headers):
            assert not trace.get_current_span().get_span_context().trace_flags.sampled
        assert headers == {}
        assert spans.get_finished_spans() == ()
        with tracing.publishing("x", "k", headers):  # a root publish is traced
            pass
        assert "traceparent" in headers
        assert len(spans.get_finished_spans()) == 1
    finally:
        tracing.shutdown()
