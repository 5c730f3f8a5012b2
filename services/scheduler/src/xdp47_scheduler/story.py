"""The scheduler's INFO lines: what happened to each rollout, readable alone.

Every line names the rollout and tenant (``rollout_id``, ``tenant`` fields) and
says it in words too: a command's outcome, each status change with its reason,
each wave start, each gate verdict that closes a wave with its counters, a
wave's deadline. A rollout's whole life is ``grep <rollout id>`` of the log.

Lines about a transaction's decisions are held until it commits
(``after_commit``): a transaction retried after a deadlock, or rolled back,
tells nothing that did not happen, and a retried one tells it once. Nothing
here runs per heartbeat: only decisions that change a rollout are told.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any

from xdp47_common.rollout import (
    TERMINAL_STATUSES,
    Decision,
    RolloutStatus,
    WaveCounters,
    WaveFinish,
)
from xdp47_scheduler.ports import RolloutRow

__all__ = [
    "after_commit",
    "command",
    "decision",
    "wave_timed_out",
]

log = logging.getLogger("xdp47_scheduler.rollouts")

_Line = tuple[int, str, tuple[Any, ...], dict[str, Any]]
_PENDING: ContextVar[list[_Line] | None] = ContextVar(
    "xdp47_story_pending", default=None
)


@contextlib.contextmanager
def after_commit() -> Iterator[None]:
    """Hold the lines told inside until the block ends without an exception."""
    lines: list[_Line] = []
    token = _PENDING.set(lines)
    try:
        yield
    finally:
        _PENDING.reset(token)
    for level, msg, args, extra in lines:
        log.log(level, msg, *args, extra=extra)


def _tell(level: int, msg: str, *args: Any, **fields: Any) -> None:
    pending = _PENDING.get()
    if pending is None:
        log.log(level, msg, *args, extra=fields)
    else:
        pending.append((level, msg, args, fields))


def _ids(row: RolloutRow) -> dict[str, Any]:
    return {"rollout_id": str(row.id), "tenant": row.tenant}


def _numbers(counters: WaveCounters | None) -> dict[str, int]:
    if counters is None:
        return {}
    return {
        "eligible": counters.wave_eligible,
        "succeeded": counters.wave_succeeded,
        "failed": counters.failed,
        "skipped": counters.skipped,
        "pending": counters.pending,
    }


def command(
    kind: str, outcome: str, rollout_id: str, tenant: str, detail: str | None = None
) -> None:
    """A start/retry/abort command's outcome (applied, no_op, duplicate,
    rejected, unknown_rollout); the refused ones at WARNING."""
    level = (
        logging.INFO
        if outcome in ("applied", "no_op", "duplicate")
        else (logging.WARNING)
    )
    suffix = f": {detail}" if detail else ""
    _tell(
        level,
        "%s command for rollout %s: %s%s",
        kind,
        rollout_id,
        outcome,
        suffix,
        rollout_id=rollout_id,
        tenant=tenant,
        command=kind,
        outcome=outcome,
    )


def _finished(
    row: RolloutRow, finish: WaveFinish, counters: WaveCounters | None
) -> None:
    _tell(
        logging.INFO,
        "rollout %s wave %d %s: %s",
        row.id,
        finish.wave,
        finish.outcome.value,
        finish.reason,
        **_ids(row),
        wave=finish.wave,
        attempt=row.attempt,
        verdict=finish.outcome.value,
        reason=finish.reason,
        **_numbers(counters),
    )


def decision(
    row: RolloutRow,
    made: Decision,
    reason: str | None,
    counters: WaveCounters | None = None,
) -> None:
    """Tell an applied decision: the gate's verdict on the wave it closes (with
    the wave's counters), the status change and its reason, the wave it starts."""
    if made.finish_wave is not None:
        _finished(row, made.finish_wave, counters)
    if made.status is not row.status:
        terminal = made.status in TERMINAL_STATUSES
        _tell(
            logging.INFO,
            "rollout %s %s -> %s%s",
            row.id,
            row.status.value,
            made.status.value,
            f": {reason}" if reason else "",
            **_ids(row),
            from_status=row.status.value,
            to_status=made.status.value,
            terminal=terminal,
            attempt=made.attempt,
            reason=reason,
        )
    if made.hold is not row.hold and made.status is RolloutStatus.RUNNING:
        _tell(
            logging.INFO,
            "rollout %s hold %s -> %s%s",
            row.id,
            row.hold.value if row.hold else "none",
            made.hold.value if made.hold else "none",
            f": {reason}" if reason else "",
            **_ids(row),
            from_hold=row.hold.value if row.hold else None,
            to_hold=made.hold.value if made.hold else None,
            reason=reason,
        )
    if made.start_wave is not None:
        _tell(
            logging.INFO,
            "rollout %s wave %d of %d started (attempt %d)",
            row.id,
            made.start_wave,
            row.waves,
            made.attempt,
            **_ids(row),
            wave=made.start_wave,
            waves=row.waves,
            attempt=made.attempt,
            status=RolloutStatus.RUNNING.value,
        )


def wave_timed_out(row: RolloutRow, wave: int, counters: WaveCounters | None) -> None:
    """The wave's deadline passed: its pending devices count as failed."""
    _tell(
        logging.INFO,
        "rollout %s wave %d deadline passed: %d pending devices time out",
        row.id,
        wave,
        counters.pending if counters is not None else 0,
        **_ids(row),
        wave=wave,
        attempt=row.attempt,
        **_numbers(counters),
    )
