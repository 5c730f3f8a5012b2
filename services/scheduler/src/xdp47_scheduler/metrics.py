"""Prometheus metrics of the scheduler (the process-wide default registry).

The consumers' message counters live in ``xdp47_common.adapters.amqp_batch``;
these describe rollouts: how many are in each status, waves started, gate
evaluations by result, events published, reconcile repairs and heartbeat lag.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

__all__ = [
    "COMMANDS",
    "EVENTS_PUBLISHED",
    "GATE_EVALUATIONS",
    "HEARD_BEHIND",
    "HEARTBEAT_LAG",
    "RECONCILE_REPAIRS",
    "ROLLOUTS",
    "WAVES_STARTED",
]

ROLLOUTS = Gauge(
    "xdp47_scheduler_rollouts",
    "Rollouts by status (refreshed on the timer).",
    ["status"],
)
WAVES_STARTED = Counter("xdp47_scheduler_waves_started_total", "Waves started.")
GATE_EVALUATIONS = Counter(
    "xdp47_scheduler_gate_evaluations_total",
    "Gate evaluations of running rollouts, by what they led to.",
    ["result"],  # wait, advanced, finished, timed_out, skipped_locked
)
COMMANDS = Counter(
    "xdp47_scheduler_commands_total",
    "Rollout commands by type and result (applied, no_op, rejected, duplicate, "
    "unknown_rollout).",
    ["type", "result"],
)
EVENTS_PUBLISHED = Counter(
    "xdp47_scheduler_events_total",
    "Rollout events by result (published, failed: the decision stands, only the "
    "notification is lost).",
    ["result"],
)
RECONCILE_REPAIRS = Counter(
    "xdp47_scheduler_reconcile_repairs_total",
    "Rows the reconcile loop repaired, by kind.",
    ["kind"],
)
HEARTBEAT_LAG = Histogram(
    "xdp47_scheduler_heartbeat_lag_seconds",
    "From ingest receiving a heartbeat to its device state being written.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
HEARD_BEHIND = Gauge(
    "xdp47_scheduler_heard_behind_seconds",
    "How far the heard-until watermark trails the clock (refreshed on the timer; "
    "-1 while nothing was heard since start): offline marking and wave deadlines "
    "wait for it.",
)
