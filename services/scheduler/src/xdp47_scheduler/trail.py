"""The scheduler's entries of the audit trail: commands it applied, decisions it took.

Generic over the command and event vocabularies, so a new command type (its
message type is the action) or a new decision event is recorded without code
here:

- ``command_entry``: one entry per command ``dispatch`` judged (applied, no-op
  or rejected), by the command's actor (``requested_by``/``actor_name``) with its
  ``request_id``, the status before and after, and the command's own fields
  (an abort's reason, ...).
- ``decision_entries``: one entry per event of a decision ``advance`` applied
  (wave started, wave finished, completed, ...), by ``scheduler``; under a
  command it names the command's actor as ``on_behalf_of``.
- ``scheduler_entry``: any other step the scheduler takes on a rollout (a
  rollback it starts of it: ``rollout.rollback_started``), by ``scheduler``.

Both are appended with ``RolloutTx.append_trail`` in the transaction that applies
them: a rolled-back transaction leaves no entry.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from xdp47_common.messages import RolloutCommand
from xdp47_common.models.audit import SCHEDULER_ACTOR, AuditEntry, AuditOutcome
from xdp47_common.rollout import Decision, DecisionEvent
from xdp47_common.rollout.commands import Phase
from xdp47_scheduler.ports import RolloutRow

__all__ = [
    "UNKNOWN_ACTOR",
    "ActingFor",
    "command_entry",
    "decision_entries",
    "scheduler_entry",
]

# A command sent without ``requested_by`` (an older API): said so, not guessed.
UNKNOWN_ACTOR = "unknown"

# Envelope fields every command has; the rest are the command's own.
_ENVELOPE = frozenset(
    {
        "message_id",
        "type",
        "version",
        "occurred_at",
        "tenant",
        "correlation_id",
        "rollout_id",
        "requested_by",
        "actor_name",
        "request_id",
    }
)


@dataclass(frozen=True)
class ActingFor:
    """The operator command a decision applies: its actor and request."""

    actor: str
    actor_name: str | None
    request_id: str | None

    @classmethod
    def of(cls, command: RolloutCommand) -> ActingFor:
        return cls(
            actor=command.requested_by or UNKNOWN_ACTOR,
            actor_name=command.actor_name,
            request_id=command.request_id,
        )


def command_entry(
    command: RolloutCommand,
    before: Phase,
    after: Phase,
    outcome: AuditOutcome,
    detail: str | None = None,
) -> AuditEntry:
    """The entry of one judged command (action: its message type)."""
    acting = ActingFor.of(command)
    own: dict[str, Any] = command.model_dump(
        mode="json", exclude=set(_ENVELOPE), exclude_none=True
    )
    data: dict[str, Any] = {"message_id": str(command.message_id), **own}
    if detail:
        data["detail"] = detail
    return AuditEntry(
        tenant=command.tenant,
        actor=acting.actor,
        actor_name=acting.actor_name,
        action=command.type,
        subject_type="rollout",
        subject_id=str(command.rollout_id),
        rollout_id=command.rollout_id,
        request_id=acting.request_id,
        status_before=before.describe(),
        status_after=after.describe(),
        outcome=outcome,
        detail=data,
    )


def decision_entries(
    row: RolloutRow,
    decision: Decision,
    acting_for: ActingFor | None,
    events: Sequence[DecisionEvent] | None = None,
) -> list[AuditEntry]:
    """One entry per event of ``decision`` applied to ``row`` (``events``: the
    ones to record, when not the decision's own); a changing decision without
    events records its status change."""
    told = decision.events if events is None else events
    after = Phase(decision.status, decision.hold).describe()
    items: list[tuple[str, dict[str, Any]]] = [
        (
            f"rollout.{e.name.value}",
            {
                k: v
                for k, v in (
                    ("wave", e.wave),
                    ("reason", e.reason),
                    ("attempt", decision.attempt),
                )
                if v is not None
            },
        )
        for e in told
    ]
    if not items and decision.status is not row.status:
        items = [(f"rollout.{decision.status.value}", {"reason": decision.reason})]
    return [
        scheduler_entry(row, action, data, acting_for, after) for action, data in items
    ]


def scheduler_entry(
    row: RolloutRow,
    action: str,
    data: dict[str, Any],
    acting_for: ActingFor | None,
    after: str | None = None,
) -> AuditEntry:
    """One entry by ``scheduler`` about ``row`` (``after``: its phase after, in
    words; None: unchanged), naming the command's actor it acts for, if any."""
    before = Phase(row.status, row.hold).describe()
    return AuditEntry(
        tenant=row.tenant,
        actor=SCHEDULER_ACTOR,
        on_behalf_of=acting_for.actor if acting_for else None,
        on_behalf_of_name=acting_for.actor_name if acting_for else None,
        action=action,
        subject_type="rollout",
        subject_id=str(row.id),
        rollout_id=row.id,
        request_id=acting_for.request_id if acting_for else None,
        status_before=before,
        status_after=before if after is None else after,
        detail=data,
    )
