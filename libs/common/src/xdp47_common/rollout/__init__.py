"""The pure rollout core: planning, gates and the state machine. No I/O, no clock."""

from xdp47_common.rollout.status import (
    TERMINAL_STATUSES,
    TRANSITIONS,
    RolloutStatus,
    TargetState,
    WaveOutcome,
)

__all__ = [
    "TERMINAL_STATUSES",
    "TRANSITIONS",
    "RolloutStatus",
    "TargetState",
    "WaveOutcome",
]
