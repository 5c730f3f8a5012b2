"""Prometheus metrics of the scheduler (the process-wide default registry).

The consumers' counters live in ``xdp47_common.adapters.consumer_metrics``;
these describe rollouts: how many are in each status, waves started, gate
evaluations by result and their duration, wave durations, command-to-effect
latency, events published, reconcile repairs and heartbeat lag; and what the
alerts watch: queue depths and consumers, rollouts past their wave deadline.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable

from prometheus_client import Counter, Gauge, Histogram

__all__ = [
    "COMMANDS",
    "COMMAND_LATENCY",
    "EVENTS_PUBLISHED",
    "GATE_DURATION",
    "GATE_EVALUATIONS",
    "HEARD_BEHIND",
    "HEARTBEAT_LAG",
    "OUTBOX_UNSENT",
    "PAST_DEADLINE",
    "QUEUE_CONSUMERS",
    "QUEUE_MESSAGES",
    "RECONCILE_REPAIRS",
    "ROLLOUTS",
    "ROLLOUTS_HELD",
    "WAVES_STARTED",
    "WAVE_DURATION",
    "observe_all",
]

ROLLOUTS = Gauge(
    "xdp47_scheduler_rollouts",
    "Rollouts by status (refreshed on the timer).",
    ["status"],
)
ROLLOUTS_HELD = Gauge(
    "xdp47_scheduler_rollouts_held",
    "Running rollouts held, by hold: paused, awaiting_approval, analysis_inconclusive "
    "(refreshed on the "
    'timer; they count in xdp47_scheduler_rollouts{status="running"} too).',
    ["hold"],
)
WAVES_STARTED = Counter("xdp47_scheduler_waves_started_total", "Waves started.")
GATE_EVALUATIONS = Counter(
    "xdp47_scheduler_gate_evaluations_total",
    "Gate evaluations of running rollouts, by what they led to.",
    ["result"],  # wait, advanced, finished, held, timed_out, skipped_locked
)
COMMANDS = Counter(
    "xdp47_scheduler_commands_total",
    "Rollout commands by type and result (applied, no_op, rejected, duplicate, "
    "unknown_rollout).",
    ["type", "result"],
)
EVENTS_PUBLISHED = Counter(
    "xdp47_scheduler_events_total",
    "Rollout events the outbox relay published, by result (published; failed: "
    "no confirm, the rows stay in the outbox and are published again).",
    ["result"],
)
OUTBOX_UNSENT = Gauge(
    "xdp47_scheduler_outbox_unsent",
    "Rollout events in the outbox not yet published (refreshed by the relay).",
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
GATE_DURATION = Histogram(
    "xdp47_scheduler_gate_evaluation_seconds",
    "One gate evaluation of a running rollout: its transaction from lock to "
    "commit, with the decisions it applied.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
WAVE_DURATION = Histogram(
    "xdp47_scheduler_wave_duration_seconds",
    "From a wave's start to the gate verdict that closed it, by outcome.",
    ["outcome"],
    buckets=(1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600, 86400),
)
COMMAND_LATENCY = Histogram(
    "xdp47_scheduler_command_latency_seconds",
    "From a rollout command's issue (its occurred_at, set by the api) to the "
    "commit of its effect, by type; applied commands only.",
    ["type"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
QUEUE_MESSAGES = Gauge(
    "xdp47_scheduler_queue_messages",
    "Ready messages in the scheduler's work queues and their dead-letter queues "
    "(refreshed on the timer, at most every 10 s).",
    ["queue"],
)
QUEUE_CONSUMERS = Gauge(
    "xdp47_scheduler_queue_consumers",
    "Consumers subscribed to the scheduler's work queues and their dead-letter "
    "queues, every scheduler counted (refreshed with the messages).",
    ["queue"],
)
PAST_DEADLINE = Gauge(
    "xdp47_scheduler_rollouts_past_deadline",
    "Running rollouts whose current wave is past its deadline (the policy's "
    "wave_deadline_seconds after the wave started); the gate normally closes "
    "such a wave at its next evaluation, so a lasting value means stuck.",
)


def observe_all(histogram: Histogram, values: Iterable[float]) -> None:
    """``histogram.observe(value)`` for each of ``values`` (finite; a histogram
    without labels), counted per bucket first: one locked increment per bucket
    touched and one for the sum, instead of two per value (a heartbeat batch
    observes hundreds of lags). Reads prometheus_client's ``_upper_bounds``,
    ``_buckets`` and ``_sum``; a unit test holds it to ``observe``."""
    bounds = histogram._upper_bounds
    counts: dict[int, int] = {}
    total = 0.0
    for value in values:
        index = bisect_left(bounds, value)  # the first bound >= value
        counts[index] = counts.get(index, 0) + 1
        total += value
    if not counts:
        return
    histogram._sum.inc(total)
    buckets = histogram._buckets
    for index, count in counts.items():
        buckets[index].inc(count)
