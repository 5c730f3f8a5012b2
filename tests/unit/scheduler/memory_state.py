"""The rows of the in-memory ``RolloutStore`` (``memory_store``): devices,
rollouts, targets, runs, the inbox and the policies, as plain dataclasses."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

from xdp47_common.rollout import RolloutKind, RolloutStatus

__all__ = ["Device", "Rollout", "Run", "State", "Target"]


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
    from_artifact: UUID | None = None
    artifact: UUID | None = None  # None: the rollout's


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
