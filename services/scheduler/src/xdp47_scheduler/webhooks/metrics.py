"""The webhook worker's metrics (served on ``XDP47_WEBHOOK_HTTP_ADDR``)."""

from __future__ import annotations

from prometheus_client import Counter

__all__ = ["ATTEMPTS", "FANNED_OUT"]

ATTEMPTS = Counter(
    "xdp47_webhook_attempts_total",
    "Webhook delivery attempts by result (delivered, failed: a retry is "
    "scheduled, parked: no retry left, stale: a job for an attempt already made).",
    ["result"],
)
FANNED_OUT = Counter(
    "xdp47_webhook_deliveries_created_total",
    "Deliveries created from rollout events (one per matching subscription).",
)
