"""The batch consumer's counters, shared by every service (``PLUMBING``).

Needs prometheus-client.
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

from xdp47_common.plumbing_metrics import PLUMBING

__all__ = [
    "BATCH_SIZE",
    "HANDLER_FAILURES",
    "MESSAGES_CONSUMED",
    "MESSAGES_DEAD_LETTERED",
]

MESSAGES_CONSUMED = Counter(
    "xdp47_messages_consumed_total",
    "Messages handled and acked after the handler committed.",
    ["queue"],
    registry=PLUMBING,
)
MESSAGES_DEAD_LETTERED = Counter(
    "xdp47_messages_dead_lettered_total",
    "Messages rejected without requeue by the consumer (the broker dead-letters "
    "them); the broker's own delivery-limit dead-lettering is not counted here.",
    ["queue", "reason"],
    registry=PLUMBING,
)
HANDLER_FAILURES = Counter(
    "xdp47_consumer_handler_failures_total",
    "Handler calls that raised, by kind (transient: retried in place).",
    ["queue", "kind"],
    registry=PLUMBING,
)
BATCH_SIZE = Histogram(
    "xdp47_consumer_batch_size",
    "Decoded messages per handler call.",
    ["queue"],
    buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000),
    registry=PLUMBING,
)
