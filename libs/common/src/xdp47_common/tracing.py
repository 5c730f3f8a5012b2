"""OpenTelemetry traces of the server processes: set-up and the bus hooks.

Off by default. ``configure(service)`` turns tracing on when the standard
``OTEL_TRACES_EXPORTER`` names an exporter (``otlp`` over HTTP/protobuf,
``console``, or any installed ``opentelemetry_traces_exporter`` entry point);
the SDK itself reads the other ``OTEL_*`` variables (``OTEL_SERVICE_NAME``,
``OTEL_RESOURCE_ATTRIBUTES``, ``OTEL_TRACES_SAMPLER(_ARG)``,
``OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT``/``HEADERS``, ``OTEL_BSP_*``,
``OTEL_PROPAGATORS``). On, it instruments asyncpg and httpx, and the HTTP
services add their server spans (``web``).

The hooks the hot paths call (``sampled_span``, ``carrying``, ``publishing``,
``consuming``, ``span``) check one module global first, so with tracing off each
costs a function call and returns a shared null context.

Across the broker, a message carries W3C trace context in its headers:
``traceparent`` (its publish span) and, when it carries several traced things (a
``HeartbeatBatch`` of several sampled heartbeats), ``x-trace-links``: the
``traceparent`` of each other one's own span. A span that serves several traced
things continues the first one's trace, links the others, and gives each other
one a span of its own in its own trace: so every sampled heartbeat's trace runs
ingest → publish → the scheduler's commit, and every start command's trace
reaches the wave it started.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
from collections.abc import (
    Iterable,
    Iterator,
    Mapping,
    MutableMapping,
    Sequence,
)
from typing import TYPE_CHECKING, Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import (
    Link,
    NonRecordingSpan,
    Span,
    SpanContext,
    SpanKind,
    TraceFlags,
)
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter

__all__ = [
    "LINKS_HEADER",
    "carrying",
    "configure",
    "consuming",
    "enabled",
    "provider",
    "publishing",
    "sampled_span",
    "shutdown",
    "span",
]

LINKS_HEADER = "x-trace-links"

_tracer: trace.Tracer | None = None
_provider: TracerProvider | None = None
_NULL: contextlib.nullcontext[None] = contextlib.nullcontext()
_W3C = TraceContextTextMapPropagator()
# Other traced things the next publish carries besides the current context's.
_carried: contextvars.ContextVar[tuple[SpanContext, ...]] = contextvars.ContextVar(
    "xdp47_trace_carried", default=()
)
# A parent that is valid but not sampled: work under it records nothing (the
# ParentBased samplers follow it), instead of starting root traces of its own.
# Its trace id's 64 low bits are all ones, which the ratio samplers drop too.
_UNSAMPLED = trace.set_span_in_context(
    NonRecordingSpan(
        SpanContext(
            trace_id=(1 << 64) - 1,
            span_id=1,
            is_remote=True,
            trace_flags=TraceFlags(TraceFlags.DEFAULT),
        )
    )
)


def enabled() -> bool:
    return _tracer is not None


def provider() -> TracerProvider | None:
    """The tracer provider while tracing is on (for FastAPI and ASGI spans)."""
    return _provider


def configure(
    service: str, *, exporter: SpanExporter | None = None, set_global: bool = True
) -> bool:
    """Turn tracing on from the ``OTEL_*`` environment (or with ``exporter``).

    Args:
        service: ``service.name`` unless ``OTEL_SERVICE_NAME`` (or the
            ``OTEL_RESOURCE_ATTRIBUTES``) names one.
        exporter: export to this, synchronously, whatever the environment says
            (tests: an in-memory exporter).
        set_global: also make it the process's global tracer provider.

    Returns:
        Whether tracing is on.

    Raises:
        ValueError: an ``OTEL_TRACES_EXPORTER`` name that is not installed.
    """
    global _tracer, _provider
    names = [
        n.strip()
        for n in os.environ.get("OTEL_TRACES_EXPORTER", "").split(",")
        if n.strip() and n.strip() != "none"
    ]
    sdk_disabled = os.environ.get("OTEL_SDK_DISABLED", "").lower() == "true"
    if exporter is None and (sdk_disabled or not names):
        return False
    from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

    from xdp47_common.trace_sampling import PresetTraceIds

    resource = Resource.create()
    if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        resource = resource.merge(Resource({SERVICE_NAME: service}))
    # No sampler argument: the SDK takes OTEL_TRACES_SAMPLER(_ARG).
    tracer_provider = TracerProvider(resource=resource, id_generator=PresetTraceIds())
    if exporter is not None:
        tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    else:
        for name in names:
            tracer_provider.add_span_processor(BatchSpanProcessor(_exporter(name)))
    if set_global:
        trace.set_tracer_provider(tracer_provider)
    # (the asyncpg instrumentation has no type hints)
    AsyncPGInstrumentor().instrument(  # type: ignore[no-untyped-call]
        tracer_provider=tracer_provider
    )
    HTTPXClientInstrumentor().instrument(tracer_provider=tracer_provider)
    _provider = tracer_provider
    _tracer = tracer_provider.get_tracer("xdp47")
    return True


def _exporter(name: str) -> SpanExporter:
    if name == "otlp":
        protocol = os.environ.get(
            "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
            os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
        )
        if protocol != "http/protobuf":
            raise ValueError(
                f"OTEL_EXPORTER_OTLP_PROTOCOL={protocol}: only http/protobuf is "
                "installed (an OTLP collector's port 4318)"
            )
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
            OTLPSpanExporter,
        )

        return OTLPSpanExporter()
    if name == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter()
    from importlib.metadata import entry_points

    for ep in entry_points(group="opentelemetry_traces_exporter", name=name):
        exporter: SpanExporter = ep.load()()
        return exporter
    raise ValueError(
        f"OTEL_TRACES_EXPORTER={name}: no such exporter (otlp, console or none)"
    )


def shutdown() -> None:
    """Export what is buffered and turn tracing off again."""
    global _tracer, _provider
    if _provider is None:
        return
    from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

    AsyncPGInstrumentor().uninstrument()  # type: ignore[no-untyped-call]
    HTTPXClientInstrumentor().uninstrument()
    _provider.shutdown()
    _tracer = _provider = None


# -- hooks --------------------------------------------------------------------


def sampled_span() -> SpanContext | None:
    """The current span when it is recorded: what a batched item carries."""
    if _tracer is None:
        return None
    context = trace.get_current_span().get_span_context()
    return context if context.trace_flags.sampled else None


def span(name: str, attributes: Mapping[str, Any] | None = None) -> Any:
    """A span of the current trace around a step (a wave start)."""
    if _tracer is None:
        return _NULL
    return _tracer.start_as_current_span(name, attributes=attributes)


@contextlib.contextmanager
def _attached(ctx: otel_context.Context) -> Iterator[None]:
    token = otel_context.attach(ctx)
    try:
        yield
    finally:
        otel_context.detach(token)


def carrying(items: Sequence[SpanContext]) -> Any:
    """Publish what carries ``items`` (sampled spans, ``sampled_span``) under
    this: the publish continues the first one's trace and links the others;
    with none, nothing under it is recorded."""
    if _tracer is None:
        return _NULL
    if not items:
        return _attached(_UNSAMPLED)
    return _carry_publish(items)


@contextlib.contextmanager
def _carry_publish(items: Sequence[SpanContext]) -> Iterator[None]:
    reset = _carried.set(tuple(items[1:]))
    try:
        with _attached(_parent(items[0])):
            yield
    finally:
        _carried.reset(reset)


def publishing(
    exchange: str, routing_key: str, headers: MutableMapping[str, Any]
) -> Any:
    """The publish span of one message; writes its trace context into
    ``headers`` (and the other carried items' spans, ``carrying``)."""
    if _tracer is None:
        return _NULL
    if not _carried.get() and not _sampled(trace.get_current_span()):
        # Under an unsampled parent (a batch of unsampled heartbeats) the span
        # would be dropped: skip building it.
        return _NULL
    return _publish_span(_tracer, exchange, routing_key, headers)


def _sampled(current: Span) -> bool:
    context = current.get_span_context()
    return not context.is_valid or context.trace_flags.sampled


@contextlib.contextmanager
def _publish_span(
    tracer: trace.Tracer,
    exchange: str,
    routing_key: str,
    headers: MutableMapping[str, Any],
) -> Iterator[None]:
    attributes = {
        "messaging.system": "rabbitmq",
        "messaging.operation.type": "publish",
        "messaging.destination.name": exchange,
        "messaging.rabbitmq.destination.routing_key": routing_key,
    }
    with _fanned(
        tracer, f"publish {exchange}", SpanKind.PRODUCER, _carried.get(), attributes
    ) as (main, others):
        if main.is_recording():
            # (imported here: it loads the propagators' entry points, which
            # processes with tracing off need not pay for at start)
            from opentelemetry import propagate

            propagate.inject(headers)
            if others:
                headers[LINKS_HEADER] = ",".join(_traceparent(s) for s in others)
        yield


def consuming(queue: str, headers: Iterable[Mapping[str, Any] | None]) -> Any:
    """The process span of one handled batch of deliveries (their ``headers``):
    it continues the first sampled message's trace and links the others; each
    other carried item gets a process span of its own in its own trace."""
    if _tracer is None:
        return _NULL
    items = [c for h in headers for c in _carried_by(h)]
    if not items:
        return _attached(_UNSAMPLED)
    attributes = {
        "messaging.system": "rabbitmq",
        "messaging.operation.type": "process",
        "messaging.destination.name": queue,
    }
    return _consume_span(_tracer, queue, items, attributes)


@contextlib.contextmanager
def _consume_span(
    tracer: trace.Tracer,
    queue: str,
    items: list[SpanContext],
    attributes: dict[str, Any],
) -> Iterator[None]:
    with (
        _attached(_parent(items[0])),
        _fanned(tracer, f"process {queue}", SpanKind.CONSUMER, items[1:], attributes),
    ):
        yield


@contextlib.contextmanager
def _fanned(
    tracer: trace.Tracer,
    name: str,
    kind: SpanKind,
    others: Sequence[SpanContext],
    attributes: dict[str, Any],
) -> Iterator[tuple[Span, list[SpanContext]]]:
    """A current span under the current context, linked to one span per other
    item (a child of that item), and each of those linked back to it."""
    own = [
        tracer.start_span(name, _parent(o), kind, attributes=attributes) for o in others
    ]
    contexts = [s.get_span_context() for s in own]
    main_context: SpanContext | None = None
    try:
        with tracer.start_as_current_span(
            name, kind=kind, attributes=attributes, links=[Link(c) for c in contexts]
        ) as main:
            main_context = main.get_span_context()
            yield main, contexts
    finally:
        for s in own:
            if main_context is not None:
                s.add_link(main_context)
            s.end()


def _parent(item: SpanContext) -> otel_context.Context:
    return trace.set_span_in_context(NonRecordingSpan(item))


def _traceparent(item: SpanContext) -> str:
    return f"00-{item.trace_id:032x}-{item.span_id:016x}-{int(item.trace_flags):02x}"


def _carried_by(headers: Mapping[str, Any] | None) -> list[SpanContext]:
    """The sampled span contexts a delivery's headers carry."""
    if not headers:
        return []
    found = []
    values = [headers.get("traceparent")]
    links = headers.get(LINKS_HEADER)
    if links:
        values.extend(_text(links).split(","))
    for value in values:
        if not value:
            continue
        ctx = _W3C.extract({"traceparent": _text(value)})
        item = trace.get_current_span(ctx).get_span_context()
        if item.is_valid and item.trace_flags.sampled:
            found.append(item)
    return found


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
