"""Pydantic aggregates.

``X`` is what the system hands out, ``XCreate`` what a client sends.
"""

from xdp47_common.models.analysis import (
    AnalysisReport,
    CheckReport,
    CohortReport,
    analysis_report,
)
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
    DeviceAttempt,
    DeviceClaim,
    DeviceClaimed,
    DeviceDetail,
    DeviceSort,
    DeviceStatus,
    Health,
    LastApply,
    RecentHeartbeat,
    TargetHistoryEntry,
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
from xdp47_common.models.reasons import FailureCode, describe_reason
from xdp47_common.models.rollout import (
    RollbackAnswer,
    RollbackRequest,
    Rollout,
    RolloutCreate,
    RolloutRun,
    RolloutStartAnswer,
)
from xdp47_common.models.tenant import Tenant, TenantCreate, TenantSettings

__all__ = [
    "ALL_SCOPES",
    "PROGRESS_STATES",
    "READ_SCOPES",
    "AnalysisReport",
    "ApiToken",
    "ApiTokenCreate",
    "ApiTokenCreated",
    "ApplyResult",
    "Artifact",
    "ArtifactCreate",
    "CheckReport",
    "CohortReport",
    "Device",
    "DeviceAttempt",
    "DeviceClaim",
    "DeviceClaimed",
    "DeviceDetail",
    "DeviceSort",
    "DeviceStatus",
    "FailureCode",
    "Health",
    "LastApply",
    "PlanExclusion",
    "PlanWave",
    "PlannedDevice",
    "Policy",
    "PolicyCreate",
    "PolicyFields",
    "ProgressState",
    "RecentHeartbeat",
    "RollbackAnswer",
    "RollbackRequest",
    "Rollout",
    "RolloutCreate",
    "RolloutDevice",
    "RolloutPlan",
    "RolloutProgress",
    "RolloutRun",
    "RolloutStartAnswer",
    "RunProgress",
    "Scope",
    "StateCounts",
    "TargetHistoryEntry",
    "Tenant",
    "TenantCreate",
    "TenantSettings",
    "WaveProgress",
    "analysis_report",
    "describe_reason",
    "expand_scopes",
]
