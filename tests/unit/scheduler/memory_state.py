"""The in-memory store's rows (``memory_store``): devices, rollouts, targets,
runs, and the whole state a transaction copies; ``row`` reads a rollout as the
port's ``RolloutRow``."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

from tests.unit.scheduler.memory_outbox import OutboxEntry
from xdp47_common.models.audit import AuditEntry
from xdp47_common.rollout import RolloutHold, RolloutKind, RolloutStatus
from xdp47_scheduler.ports import RolloutRow

__all__ = ["Device", "Rollout", "Run", "State", "Target", "row"]


@dataclass
class Device:
    tenant: str
    id: str
    channel: str = "stable"
    labels: dict[str, str] = field(default_factory=dict)
    online: bool = True
    artifact: UUID | None = None
    healthy: bool = True
    failed_artifact: UUID | None = None  # its last apply of this one failed
    failed_code: str | None = None  # the code it reported (apply_failed if None)
    last_seen: datetime | None = None
    timezone: str | None = None  # reported or labelled; None: the tenant's default


@dataclass
class Rollout:
    id: UUID
    tenant: str
    artifact_id: UUID
    waves: int
    selector: dict[str, str] = field(default_factory=dict)
    channel: str = "stable"
    policy_id: UUID | None = None
    wave_percentages: list[int] | None = None
    status: RolloutStatus = RolloutStatus.DRAFT
    current_wave: int | None = None
    current_wave_started_at: datetime | None = None
    attempt: int = 0
    reason: str | None = None
    effective_policy: dict[str, Any] | None = None
    planned: int | None = None
    hold: RolloutHold | None = None
    held_since: datetime | None = None
    grace_skipped: bool = False
    started_by: str | None = None
    kind: RolloutKind = RolloutKind.ROLLOUT
    rollback_of: UUID | None = None
    name: str | None = None


@dataclass
class Target:
    tenant: str
    wave: int
    state: str = "pending"
    active: bool = True
    reason: str | None = None
    analysed_window: int | None = None  # see memory_analysis
    from_artifact: UUID | None = None
    artifact: UUID | None = None  # None: the rollout's
    late: bool = False  # a late joiner (memory_store.join_late)


@dataclass
class Run:
    eligible: int = 0
    succeeded: int = 0
    failed: int = 0
    skipped: int = 0
    outcome: str | None = None
    reason: str | None = None


@dataclass
class State:
    rollouts: dict[UUID, Rollout] = field(default_factory=dict)
    devices: dict[tuple[str, str], Device] = field(default_factory=dict)
    targets: dict[tuple[UUID, str], Target] = field(default_factory=dict)
    runs: dict[tuple[UUID, int, int], Run] = field(default_factory=dict)
    prior: dict[tuple[UUID, int], int] = field(default_factory=dict)
    inbox: set[tuple[str, UUID]] = field(default_factory=set)
    policies: dict[tuple[str, UUID], dict[str, Any]] = field(default_factory=dict)
    four_eyes: set[str] = field(default_factory=set)  # tenants that require it
    default_zones: dict[str, str] = field(default_factory=dict)  # tenant -> zone
    # (rollout, zone key) -> (the wave start it was computed for, the window's
    # first opening since): the rows ``rollout_windows`` keeps per zone.
    windows: dict[tuple[UUID, str], tuple[datetime | None, datetime | None]] = field(
        default_factory=dict
    )
    # The audit trail, appended in transaction order (rolled back with the rest).
    trail: list[AuditEntry] = field(default_factory=list)
    outbox: list[OutboxEntry] = field(default_factory=list)
    # (rollout, attempt, wave, cohort, metric) -> (devices, samples, total)
    analysis: dict[tuple[UUID, int, int, str, str], tuple[int, int, float]] = field(
        default_factory=dict
    )


def row(r: Rollout) -> RolloutRow:
    return RolloutRow(
        id=r.id,
        tenant=r.tenant,
        artifact_id=r.artifact_id,
        policy_id=r.policy_id,
        selector=dict(r.selector),
        channel=r.channel,
        waves=r.waves,
        wave_percentages=r.wave_percentages,
        status=r.status,
        current_wave=r.current_wave,
        current_wave_started_at=r.current_wave_started_at,
        attempt=r.attempt,
        effective_policy=r.effective_policy,
        hold=r.hold,
        held_since=r.held_since,
        grace_skipped=r.grace_skipped,
        started_by=r.started_by,
        kind=r.kind,
        rollback_of=r.rollback_of,
    )
