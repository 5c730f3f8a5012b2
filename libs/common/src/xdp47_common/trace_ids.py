"""The span and trace ids of the tracer provider (``tracing.configure``).

The SDK's random ids, with one addition: a trace id drawn before the span that
uses it. The server span of a raw route asks the sampler before building
anything (``tracing.server_sampling``): an unsampled request then costs no span
at all, and a sampled one must start its span with the trace id the sampler
was asked about, or a ratio sampler would decide twice (1 % of 1 %). Imported
only while tracing is on (it loads the SDK).
"""

from __future__ import annotations

import threading

from opentelemetry.sdk.trace.id_generator import RandomIdGenerator

__all__ = ["PresetTraceIds"]


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
