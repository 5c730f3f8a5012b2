"""Rollout and RolloutRun aggregates: a release sent to a selection of devices in
waves, and the history of each wave."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from uuid import UUID

from pydantic import (
    BeforeValidator,
    Field,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from xdp47_common.models.base import (
    Name,
    NotBool,
    ReadModel,
    TenantId,
    Text,
    WriteModel,
)
from xdp47_common.models.device import ChannelName
from xdp47_common.rollout.status import (
    RolloutHold,
    RolloutKind,
    RolloutStatus,
    WaveOutcome,
)
from xdp47_common.selectors import MAX_REQUIREMENTS, SelectorJson, coerce_selector

__all__ = [
    "RollbackAnswer",
    "RollbackRequest",
    "Rollout",
    "RolloutCreate",
    "RolloutRun",
    "RolloutStartAnswer",
    "SelectorInput",
]

MAX_WAVES = 100

# A selector as a client may send it: the JSON object, or either text form, all
# through the one parser (``xdp47_common.selectors``); the model holds the JSON
# form (the object when every requirement is an equality, else the list).
SelectorInput = Annotated[
    SelectorJson,
    BeforeValidator(coerce_selector),
    WithJsonSchema(
        {
            "anyOf": [
                {
                    "type": "object",
                    "additionalProperties": {"type": "string", "maxLength": 63},
                    "maxProperties": MAX_REQUIREMENTS,
                    "examples": [{"fleet": "acc", "idx": "0"}],
                },
                {
                    "type": "array",
                    "maxItems": MAX_REQUIREMENTS,
                    "items": {
                        "type": "object",
                        "properties": {
                            "key": {"type": "string"},
                            "operator": {
                                "enum": ["=", "!=", "in", "notin", "exists", "!"]
                            },
                            "values": {"type": "array", "items": {"type": "string"}},
                        },
                        "required": ["key", "operator"],
                    },
                },
                {
                    "type": "string",
                    "description": "requirements separated by commas or newlines: "
                    "k=v, k!=v, k in (a,b), k notin (a,b), k, !k",
                    "examples": [
                        "fleet=acc,idx=0",
                        "fleet=acc\nidx=0",
                        "model in (k2,k3),ring notin (canary),!test",
                    ],
                },
            ],
            "title": "Selector",
        },
        mode="validation",
    ),
]


class RolloutCreate(WriteModel):
    tenant: TenantId
    artifact_id: UUID
    name: Annotated[Name, Field(min_length=1, max_length=200)] | None = None
    selector: SelectorInput = Field(
        default_factory=dict,
        description="Label selector: every requirement must hold (k=v, k!=v, "
        "k in (a,b), k notin (a,b), k, !k). Text (a comma list or lines), a JSON "
        'object of equalities {"fleet": "acc"} or a requirement list '
        "(docs/api.md#selectors).",
    )
    group_id: UUID | None = Field(
        default=None,
        description="A device group of the tenant: the rollout targets its members "
        "(a dynamic group's selector is evaluated when the rollout is planned) "
        "that also match the selector.",
    )
    channel: ChannelName = "stable"
    waves: Annotated[int, Field(ge=1, le=MAX_WAVES), NotBool] = 1
    wave_percentages: list[Annotated[int, Field(ge=1, le=100), NotBool]] | None = Field(
        default=None,
        description="Share of the devices per wave, in percent, summing to 100; "
        "when given, its length is the number of waves.",
    )
    policy_id: UUID | None = None

    @field_validator("wave_percentages")
    @classmethod
    def _sums_to_100(cls, v: list[int] | None) -> list[int] | None:
        if v is not None and sum(v) != 100:
            raise ValueError(f"wave_percentages must sum to 100, got {sum(v)}")
        if v is not None and len(v) > MAX_WAVES:
            raise ValueError(f"at most {MAX_WAVES} waves")
        return v

    @model_validator(mode="after")
    def _waves_match(self) -> RolloutCreate:
        if self.wave_percentages is not None:
            if "waves" in self.model_fields_set and self.waves != len(
                self.wave_percentages
            ):
                raise ValueError(
                    f"waves is {self.waves} but wave_percentages lists "
                    f"{len(self.wave_percentages)} waves"
                )
            self.waves = len(self.wave_percentages)
        return self


class Rollout(ReadModel):
    id: UUID
    tenant: str
    name: str | None
    artifact_id: UUID
    policy_id: UUID | None
    selector: SelectorJson
    group_id: UUID | None = None
    channel: str
    waves: int
    wave_percentages: list[int] | None
    status: RolloutStatus
    hold: RolloutHold | None = Field(
        default=None,
        description="Why a running rollout stands still: paused (until resume), "
        "awaiting_approval (wave current_wave + 1 starts on approve) or "
        "analysis_inconclusive (a telemetry analysis check had too few devices on "
        "a side, the reason names it; resume judges the wave again); null: it "
        "moves. Devices already told keep updating while held.",
    )
    held_since: datetime | None = None
    reason: str | None
    current_wave: int | None
    attempt: int = Field(
        default=0,
        description="0 before start, 1 once started, one more for each retry.",
    )
    kind: RolloutKind = Field(
        default=RolloutKind.ROLLOUT,
        description="rollout, or rollback: the devices that applied the artifact "
        "of rollout `rollback_of` go back to what each ran before (artifact_id "
        "is then the release taken back).",
    )
    rollback_of: UUID | None = Field(
        default=None, description="The rollout a rollback undoes."
    )
    started_by: str | None = Field(
        default=None,
        description="Who started the current attempt (token:<id>): under the "
        "tenant's four_eyes_approval, another token must approve.",
    )
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None

    @property
    def phase(self) -> str:
        """``status``, or ``status:hold`` while held (``Phase.key`` of the core)."""
        return self.status.value + (f":{self.hold.value}" if self.hold else "")


class RolloutRun(ReadModel):
    rollout_id: UUID
    wave: int
    attempt: int
    eligible: int
    succeeded: int
    failed: int
    skipped: int
    started_at: datetime | None
    finished_at: datetime | None
    outcome: WaveOutcome | None
    reason: str | None


class RolloutStartAnswer(Rollout):
    """The answer to a start: the rollout, and what its plan looks like now.

    ``planned`` devices would be in its waves if the scheduler planned now;
    ``excluded`` counts the devices the selector and channel match that are left
    out, by reason (``in_another_rollout``; ``offline`` ones under skip_offline
    stay planned but would be skipped at their wave's start). Both are None when
    the rollout was no longer a draft (a repeated start). ``warnings`` says in
    words what an operator should know before the scheduler acts.
    """

    planned: int | None = None
    excluded: dict[str, int] = Field(default_factory=dict)
    warnings: list[str] = Field(default_factory=list)


class RollbackRequest(WriteModel):
    """The optional body of ``POST /api/rollouts/{id}:rollback``."""

    policy: Annotated[Text, Field(min_length=1, max_length=100)] | None = Field(
        default=None,
        description="The policy the rollback runs under, by id or name; default "
        "the rolled-back rollout's.",
    )


class RollbackAnswer(Rollout):
    """The answer to a rollback: the rolled-back rollout as it was, the id of the
    rollback rollout the scheduler creates and starts, and how many devices it
    will send back."""

    rollback_id: UUID
    devices: int = Field(
        description="Devices that applied the artifact and still run it (with a "
        "previous artifact to go back to) when the command was sent."
    )
