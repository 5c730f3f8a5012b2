"""The read model of a rollout's telemetry analysis: where each check of the
current wave stands, with the numbers of both cohorts (``GET
/api/rollouts/{id}/analysis``). Built by ``analysis_report`` from the running
aggregates the scheduler keeps; the same judgement the gates make."""

from __future__ import annotations

from uuid import UUID

from pydantic import Field

from xdp47_common.models.base import ReadModel
from xdp47_common.rollout.analysis import AnalysisPolicy
from xdp47_common.rollout.judgement import (
    CheckOutcome,
    MetricAggregate,
    Observations,
    judge_analysis,
)
from xdp47_common.rollout.status import RolloutStatus

__all__ = ["AnalysisReport", "CheckReport", "CohortReport", "analysis_report"]


class CohortReport(ReadModel):
    devices: int = Field(description="Devices that reported the metric.")
    samples: int = Field(description="Heartbeats that carried it.")
    mean: float | None = Field(description="Mean of the samples; null: none yet.")


class CheckReport(ReadModel):
    check: str
    outcome: CheckOutcome = Field(description="pass, fail or inconclusive now.")
    value: float | None = Field(
        description="updated - baseline or updated / baseline; null: inconclusive."
    )
    updated: CohortReport
    baseline: CohortReport
    reason: str


class AnalysisReport(ReadModel):
    rollout_id: UUID
    status: RolloutStatus
    attempt: int
    wave: int | None = Field(description="The current wave (null: not started).")
    analysis: AnalysisPolicy | None = Field(
        description="The analysis the rollout runs under (null: none)."
    )
    judged: bool = Field(
        description="Whether the gates analyse this wave: running, with an "
        "analysis, and not the last wave (no device left to compare with)."
    )
    checks: list[CheckReport] = Field(
        description="Each check on the current wave's aggregates (empty when "
        "not judged)."
    )


def _cohort(agg: MetricAggregate) -> CohortReport:
    return CohortReport(devices=agg.devices, samples=agg.samples, mean=agg.mean)


def analysis_report(
    rollout_id: UUID,
    status: RolloutStatus,
    attempt: int,
    wave: int | None,
    waves: int,
    analysis: AnalysisPolicy | None,
    observations: Observations,
) -> AnalysisReport:
    """The report of a rollout's current wave (pure: the caller reads the rows)."""
    judged = (
        analysis is not None
        and status is RolloutStatus.RUNNING
        and wave is not None
        and wave < waves
    )
    checks: list[CheckReport] = []
    if judged and analysis is not None:
        for r in judge_analysis(analysis, observations).results:
            checks.append(
                CheckReport(
                    check=str(r.check),
                    outcome=r.outcome,
                    value=r.value,
                    updated=_cohort(r.updated),
                    baseline=_cohort(r.baseline),
                    reason=r.reason,
                )
            )
    return AnalysisReport(
        rollout_id=rollout_id,
        status=status,
        attempt=attempt,
        wave=wave,
        analysis=analysis,
        judged=judged,
        checks=checks,
    )
