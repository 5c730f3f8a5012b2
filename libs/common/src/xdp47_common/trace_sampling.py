"""A server span's sampling decision, taken before any span is built, and the
trace ids of the tracer provider (``tracing.configure``) that keep it.

The SDK's random ids, with one addition: a trace id drawn before the span that
uses it. The server span of a raw route asks the sampler before building
anything (``server_sampling``): an unsampled request then costs no span at all,
and a sampled one must start its span with the trace id the sampler was asked
about, or a ratio sampler would decide twice (1 % of 1 %). Imported only while
tracing is on (it loads the SDK).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, TraceFlags

__all__ = ["PresetTraceIds", "ServerSampling", "server_sampling"]


class PresetTraceIds(RandomIdGenerator):
    """Random ids; the next root span of this thread takes a preset trace id."""

    def __init__(self) -> None:
        self._next = threading.local()

    def preset(self, trace_id: int) -> None:
        """The trace id of the next root span started on this thread."""
        self._next.trace_id = trace_id

    def generate_trace_id(self) -> int:
        trace_id: int = getattr(self._next, "trace_id", 0)
        if trace_id:
            self._next.trace_id = 0
            return trace_id
        return super().generate_trace_id()


ServerSampling = Callable[
    [otel_context.Context | None, str], otel_context.Context | None
]


def server_sampling(tracer_provider: trace.TracerProvider) -> ServerSampling | None:
    """The sampling decision of a server span, taken before any span is built.

    Starting a span that the sampler drops still builds the span, its context,
    the sampler's result and a generator-based context manager: ~30 µs of
    ingest's heartbeat at 1 % sampling (docs/performance.md), most of it in
    the garbage collections those objects bring on while hundreds of requests
    are in flight. The returned function decides first and returns the context
    to run an unsampled request under, or ``None`` (recorded: start the span as
    usual; a root span takes the trace id the sampler was asked about,
    ``PresetTraceIds``, so the decision is the same one).

    A root request (no ``traceparent``) under the ratio samplers
    (``traceidratio``, ``parentbased_traceidratio``) is decided by the SDK's
    own rule on a fresh trace id (its 64 low bits under the rate's bound) and,
    dropped, runs under one shared unsampled context whose trace id that rule
    drops too: no object per request. Any other sampler, or a request with a
    parent, is asked as the SDK asks it and, dropped, gets the non-recording
    span the SDK would build. Either way work under it records nothing.

    Returns:
        The function ``(parent context, span name) -> context or None``; None
        when the provider is not the one ``configure`` builds.
    """
    ids = getattr(tracer_provider, "id_generator", None)
    sampler = getattr(tracer_provider, "sampler", None)
    if not isinstance(ids, PresetTraceIds) or sampler is None:
        return None
    random_ids = TraceFlags(TraceFlags.DEFAULT | TraceFlags.RANDOM_TRACE_ID)
    default = TraceFlags(TraceFlags.DEFAULT)
    # ParentBased keeps its root sampler private; a test pins the attribute.
    root = (
        getattr(sampler, "_root", None) if isinstance(sampler, ParentBased) else sampler
    )
    ratio = root if isinstance(root, TraceIdRatioBased) else None
    limit = TraceIdRatioBased.TRACE_ID_LIMIT
    dropped_root = trace.set_span_in_context(
        NonRecordingSpan(
            SpanContext(
                (ids.generate_trace_id() & ~limit) | limit,
                ids.generate_span_id(),
                is_remote=False,
                trace_flags=random_ids,
            )
        )
    )

    def decide(parent: otel_context.Context | None, name: str) -> Any:
        if parent is None and ratio is not None:
            trace_id = ids.generate_trace_id()
            if trace_id & limit < ratio.bound:
                ids.preset(trace_id)
                return None
            return dropped_root
        parent_span = trace.get_current_span(parent).get_span_context()
        if parent_span.is_valid:
            trace_id = parent_span.trace_id
            flags = random_ids if parent_span.trace_flags.random_trace_id else default
        else:
            trace_id = ids.generate_trace_id()
            flags = random_ids
        result = sampler.should_sample(parent, trace_id, name, SpanKind.SERVER)
        if result.decision.is_recording():
            if not parent_span.is_valid:
                ids.preset(trace_id)
            return None
        dropped = SpanContext(
            trace_id,
            ids.generate_span_id(),
            is_remote=False,
            trace_flags=flags,
            trace_state=result.trace_state,
        )
        return trace.set_span_in_context(NonRecordingSpan(dropped))

    return decide
