"""The core's table of accepted commands is what ``start``/``retry``/``abort`` do."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest

from xdp47_common.rollout import (
    ACCEPTED_COMMANDS,
    NO_OP_IN,
    CommandName,
    Decision,
    InvalidTransition,
    RolloutState,
    RolloutStatus,
    abort,
    accepted_from,
    offered_from,
    retry,
    start,
)

APPLY: dict[CommandName, Callable[[RolloutState], Decision]] = {
    CommandName.START: start,
    CommandName.RETRY: retry,
    CommandName.ABORT: lambda r: abort(r, by="op"),
}


def _state(status: RolloutStatus) -> RolloutState:
    in_wave = status is not RolloutStatus.DRAFT
    return RolloutState(
        id=uuid.uuid4(),
        status=status,
        waves=2,
        current_wave=1 if in_wave else None,
        attempt=1 if in_wave else 0,
    )


@pytest.mark.parametrize("status", list(RolloutStatus))
@pytest.mark.parametrize("command", list(CommandName))
def test_each_command_raises_exactly_outside_the_table(
    status: RolloutStatus, command: CommandName
) -> None:
    rollout = _state(status)
    if command not in ACCEPTED_COMMANDS[status]:
        with pytest.raises(InvalidTransition):
            APPLY[command](rollout)
        return
    decision = APPLY[command](rollout)
    # Accepted: a move, or a repeat whose effect already holds (a no-op).
    assert decision.changed is (NO_OP_IN[command] is not status)


def test_abort_of_an_aborted_rollout_is_an_accepted_no_op() -> None:
    decision = abort(_state(RolloutStatus.ABORTED), by="op")
    assert not decision.changed
    assert RolloutStatus.ABORTED in accepted_from(CommandName.ABORT)
    # ... which a UI does not offer: it would change nothing.
    assert RolloutStatus.ABORTED not in offered_from(CommandName.ABORT)


def test_the_ui_offers_only_moves() -> None:
    assert offered_from(CommandName.START) == {RolloutStatus.DRAFT}
    assert offered_from(CommandName.RETRY) == {
        RolloutStatus.FAILED,
        RolloutStatus.PARTIAL,
    }
    assert offered_from(CommandName.ABORT) == {
        RolloutStatus.DRAFT,
        RolloutStatus.RUNNING,
    }
