"""Judge a wave's analysis checks from the running aggregates of its two cohorts.

The scheduler keeps, per rollout, attempt, wave, cohort and metric, how many
devices reported the metric in the wave's window, how many samples (heartbeats)
it got and their sum (``MetricAggregate``). The cohorts are the devices updated
in the wave (``updated``) and comparable devices not updated yet (``baseline``:
the devices of the rollout's next wave, same selector, same window). A check's
mean is the mean of the samples of its side.

Each check ends:

- ``inconclusive`` when a side has fewer than ``min_devices`` devices that
  reported the metric (nothing is guessed from too few devices);
- ``pass`` or ``fail`` by the check's comparison of the two means.

``judge_analysis`` judges every check; its ``failed`` and ``inconclusive`` give
the reasons the gates use (``gates.AnalysisFailed`` / ``AnalysisInconclusive``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from xdp47_common.rollout.analysis import AnalysisPolicy, Check

__all__ = [
    "AnalysisJudgement",
    "CheckOutcome",
    "CheckResult",
    "Cohort",
    "MetricAggregate",
    "Observations",
    "judge_analysis",
    "judge_check",
]


class Cohort(StrEnum):
    UPDATED = "updated"
    BASELINE = "baseline"


@dataclass(frozen=True, slots=True)
class MetricAggregate:
    """One cohort's running aggregate of one metric in one wave's window."""

    devices: int = 0
    samples: int = 0
    total: float = 0.0

    def __post_init__(self) -> None:
        if self.devices < 0 or self.samples < self.devices:
            raise ValueError(
                f"devices {self.devices} must be >= 0 and <= samples {self.samples}"
            )

    @property
    def mean(self) -> float | None:
        return self.total / self.samples if self.samples else None


# (cohort, metric) -> aggregate; a missing key is a cohort that reported nothing.
Observations = Mapping[tuple[Cohort, str], MetricAggregate]

_NONE = MetricAggregate()


class CheckOutcome(StrEnum):
    PASS = "pass"
    FAIL = "fail"
    INCONCLUSIVE = "inconclusive"


def _num(value: float) -> str:
    return f"{value:.4g}"


def _side(name: str, agg: MetricAggregate) -> str:
    mean = agg.mean
    devices = f"{agg.devices} device{'s' if agg.devices != 1 else ''}"
    if mean is None:
        return f"{name}: no samples ({devices})"
    return f"{name} mean {_num(mean)} ({devices}, {agg.samples} samples)"


@dataclass(frozen=True, slots=True)
class CheckResult:
    """A check's outcome, with the numbers it was judged on and a reason."""

    check: Check
    outcome: CheckOutcome
    updated: MetricAggregate
    baseline: MetricAggregate
    value: float | None
    reason: str


def judge_check(
    check: Check, observations: Observations, min_devices: int
) -> CheckResult:
    """Judge one check (see the module's docstring)."""
    updated = observations.get((Cohort.UPDATED, check.metric), _NONE)
    baseline = observations.get((Cohort.BASELINE, check.metric), _NONE)
    sides = f"{_side('updated', updated)}, {_side('baseline', baseline)}"
    short = [
        f"{name} {agg.devices} < min_devices {min_devices}"
        for name, agg in (("updated", updated), ("baseline", baseline))
        if agg.devices < min_devices
    ]
    if short or updated.mean is None or baseline.mean is None:
        why = "; ".join(short) or "no samples"
        return CheckResult(
            check,
            CheckOutcome.INCONCLUSIVE,
            updated,
            baseline,
            None,
            f"{check.metric}: too few devices ({why}); {sides}",
        )
    value = check.value(updated.mean, baseline.mean)
    holds = check.comparison.holds(value, check.threshold)
    shown = (
        f"{check.metric}: {check.expression} = {_num(value)} "
        f"{check.comparison.value if holds else check.comparison.negation} "
        f"{check.threshold!r}; {sides}"
    )
    return CheckResult(
        check,
        CheckOutcome.PASS if holds else CheckOutcome.FAIL,
        updated,
        baseline,
        value,
        shown,
    )


@dataclass(frozen=True, slots=True)
class AnalysisJudgement:
    """Every check's result, in the policy's order."""

    results: tuple[CheckResult, ...] = field(default_factory=tuple)

    def _with(self, outcome: CheckOutcome) -> tuple[CheckResult, ...]:
        return tuple(r for r in self.results if r.outcome is outcome)

    @property
    def failed(self) -> tuple[CheckResult, ...]:
        return self._with(CheckOutcome.FAIL)

    @property
    def inconclusive(self) -> tuple[CheckResult, ...]:
        return self._with(CheckOutcome.INCONCLUSIVE)

    @property
    def passed(self) -> tuple[CheckResult, ...]:
        return self._with(CheckOutcome.PASS)

    def reason(self, outcome: CheckOutcome) -> str:
        """The reasons of the checks with this outcome, joined."""
        return " | ".join(r.reason for r in self._with(outcome))


def judge_analysis(
    analysis: AnalysisPolicy, observations: Observations
) -> AnalysisJudgement:
    """Judge every check of ``analysis`` on ``observations``."""
    return AnalysisJudgement(
        tuple(
            judge_check(c, observations, analysis.min_devices) for c in analysis.checks
        )
    )
