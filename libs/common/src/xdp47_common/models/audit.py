"""The audit trail's vocabulary: an entry to append, and a record as read back.

Every write (API, UI, CLI) and every scheduler decision appends one
``AuditEntry`` in the transaction of the change (``xdp47_common.adapters.
audit_trail``); ``GET /api/audit`` hands out ``AuditRecord``s. Records are
never changed or deleted (migration 0020 refuses it in the database).

Actions are ``<subject>.<verb>``: an operator's request in the past tense
(``rollout.created``, ``token.revoked``), a rollout command by its message
type (``rollout.start`` as the scheduler applied it, ``rollout.start.requested``
as the API received it), a scheduler decision by its event
(``rollout.wave_started``, ``rollout.completed``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any
from uuid import UUID

from pydantic import Field

from xdp47_common.models.base import ReadModel

__all__ = ["SCHEDULER_ACTOR", "AuditEntry", "AuditOutcome", "AuditRecord"]

# The actor of the scheduler's own decisions (a gate, a deadline, the timer).
SCHEDULER_ACTOR = "scheduler"


class AuditOutcome(StrEnum):
    APPLIED = "applied"  # the change was made
    NO_OP = "no_op"  # accepted, but its effect already held
    REJECTED = "rejected"  # the scheduler refused the command (status moved on)
    ACCEPTED = "accepted"  # the API took the request (a command sent)
    REFUSED = "refused"  # the API answered 4xx, or the scheduler refused (four-eyes)
    FAILED = "failed"  # the API could not pass it on (broker down): nothing changed


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One row to append: who did what to which subject, and what it changed."""

    tenant: str
    actor: str
    action: str
    subject_type: str
    subject_id: str
    outcome: AuditOutcome = AuditOutcome.APPLIED
    actor_name: str | None = None
    on_behalf_of: str | None = None
    on_behalf_of_name: str | None = None
    rollout_id: UUID | None = None
    request_id: str | None = None
    status_before: str | None = None
    status_after: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)


class AuditRecord(ReadModel):
    """An appended entry: its place in the trail (``seq``) and time."""

    seq: int
    tenant: str
    at: datetime
    actor: str
    actor_name: str | None = None
    on_behalf_of: str | None = None
    on_behalf_of_name: str | None = None
    action: str
    subject_type: str
    subject_id: str
    rollout_id: UUID | None = None
    request_id: str | None = None
    status_before: str | None = None
    status_after: str | None = None
    outcome: str
    detail: dict[str, Any] = Field(default_factory=dict)
