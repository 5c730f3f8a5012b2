"""Pydantic aggregates.

``X`` is what the system hands out, ``XCreate`` what a client sends.
"""

from xdp47_common.models.api_token import (
    ALL_SCOPES,
    READ_SCOPES,
    ApiToken,
    ApiTokenCreate,
    ApiTokenCreated,
    Scope,
    expand_scopes,
)
from xdp47_common.models.artifact import Artifact, ArtifactCreate
from xdp47_common.models.device import (
    ApplyResult,
    Device,
    DeviceClaim,
    DeviceClaimed,
    DeviceStatus,
    Health,
    LastApply,
)
from xdp47_common.models.plan import PlanExclusion, PlannedDevice, PlanWave, RolloutPlan
from xdp47_common.models.policy import Policy, PolicyCreate, PolicyFields
from xdp47_common.models.progress import (
    PROGRESS_STATES,
    ProgressState,
    RolloutDevice,
    RolloutProgress,
    RunProgress,
    StateCounts,
    WaveProgress,
)
from xdp47_common.models.rollout import Rollout, RolloutCreate, RolloutRun
from xdp47_common.models.tenant import Tenant, TenantCreate

__all__ = [
    "ALL_SCOPES",
    "PROGRESS_STATES",
    "READ_SCOPES",
    "ApiToken",
    "ApiTokenCreate",
    "ApiTokenCreated",
    "ApplyResult",
    "Artifact",
    "ArtifactCreate",
    "Device",
    "DeviceClaim",
    "DeviceClaimed",
    "DeviceStatus",
    "Health",
    "LastApply",
    "PlanExclusion",
    "PlanWave",
    "PlannedDevice",
    "Policy",
    "PolicyCreate",
    "PolicyFields",
    "ProgressState",
    "Rollout",
    "RolloutCreate",
    "RolloutDevice",
    "RolloutPlan",
    "RolloutProgress",
    "RolloutRun",
    "RunProgress",
    "Scope",
    "StateCounts",
    "Tenant",
    "TenantCreate",
    "WaveProgress",
    "expand_scopes",
]
