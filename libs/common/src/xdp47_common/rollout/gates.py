"""Gate evaluation: judge one running wave from its counters, never device lists.

A gate is a priority-ordered list of small rules (Prefect's orchestration rules);
the first rule with an opinion decides. The order encodes the semantics:

1. ``ZeroEligible``: a wave with no device at all (nothing planned in it, e.g. the
   trailing waves of a fleet smaller than the number of waves, or nothing to redo
   in a retry) passes as skipped. A wave that had devices and lost them all
   (every one skipped offline) aborts the rollout with ``abort_on_zero_eligible``
   (verdict ``ABORT``), else passes as skipped. A plan with no device at all is
   decided at start (``machine.start``), never here.
2. ``TooManyFailures``: more than ``max_failures_per_wave`` failures fails at once,
   even inside the grace period: a bad release is stopped as fast as possible.
3. ``RatioUnreachable``: fails once the ratio cannot reach ``min_success_ratio``
   even if every pending device succeeds (after all finished: the final ratio).
4. ``Grace``: waits until ``grace_seconds`` after the wave started.
5. ``AnalysisFailed``: a telemetry analysis check (``judgement``) that fails on
   enough devices on both sides fails the wave at once, numbers in the reason.
6. ``PendingDevices``: waits while devices are pending. A wave never passes early
   with devices still updating; the per-wave deadline (``deadline_passed``) turns
   those into ``timed_out`` failures, so no wave waits forever.
7. ``AnalysisInconclusive``: a check with too few devices on a side holds the
   rollout (verdict ``HOLD``, reason ``ANALYSIS_HELD``) instead of guessing.
8. ``AllFinished``: passes (rules 3, 5 and 7 guaranteed ratio and analysis).

Counters: ``eligible`` devices were told to update (``succeeded + failed +
pending``); ``skipped`` ones were not (offline at wave start under skip_offline).
The success ratio is ``succeeded / eligible`` of the wave as a whole: in a retry,
``prior_succeeded`` (the wave's devices that applied in earlier attempts) counts
on both sides, so retrying one failed device of a wave of four whose three others
applied judges 3 of 4 (0.75) if it fails again, never 0 of 1.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import ClassVar, Protocol

from xdp47_common.rollout.judgement import (
    AnalysisJudgement,
    CheckOutcome,
    Observations,
    judge_analysis,
)
from xdp47_common.rollout.policy import EffectivePolicy
from xdp47_common.rollout.status import WaveOutcome

__all__ = [
    "ANALYSIS_HELD",
    "GATE_RULES",
    "GateContext",
    "GateRule",
    "GateVerdict",
    "Verdict",
    "WaveCounters",
    "deadline_at",
    "deadline_passed",
    "evaluate_gate",
]


def _require_aware(name: str, value: datetime) -> None:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, got {value!r}")


@dataclass(frozen=True, slots=True)
class WaveCounters:
    """The counters of one wave in one attempt (a RolloutRun plus ``pending``).

    ``prior_succeeded``: devices of this wave that applied in an earlier attempt
    (0 in the first); a retry's gates judge the wave as a whole with them.
    """

    eligible: int
    succeeded: int
    failed: int
    skipped: int
    pending: int
    prior_succeeded: int = 0

    @property
    def wave_eligible(self) -> int:
        """Devices of the whole wave told to update, in any attempt."""
        return self.eligible + self.prior_succeeded

    @property
    def wave_succeeded(self) -> int:
        """Devices of the whole wave that applied, in any attempt."""
        return self.succeeded + self.prior_succeeded

    def __post_init__(self) -> None:
        for name in (
            "eligible",
            "succeeded",
            "failed",
            "skipped",
            "pending",
            "prior_succeeded",
        ):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.succeeded + self.failed + self.pending != self.eligible:
            raise ValueError(
                f"succeeded {self.succeeded} + failed {self.failed} + pending "
                f"{self.pending} must equal eligible {self.eligible}"
            )

    @classmethod
    def from_run(
        cls,
        eligible: int,
        succeeded: int,
        failed: int,
        skipped: int,
        prior_succeeded: int = 0,
    ) -> WaveCounters:
        """Build counters from a RolloutRun row; pending is what is left."""
        return cls(
            eligible=eligible,
            succeeded=succeeded,
            failed=failed,
            skipped=skipped,
            pending=eligible - succeeded - failed,
            prior_succeeded=prior_succeeded,
        )


class Verdict(StrEnum):
    WAIT = "wait"
    PASS = "pass"
    FAIL = "fail"
    ABORT = "abort"  # stop the rollout as ``aborted``: there is nothing to judge
    HOLD = "hold"  # wait, and say why in the rollout's reason (analysis inconclusive)


# The words of a hold's reason: ``wave N: analysis inconclusive, rollout held: …``.
ANALYSIS_HELD = "analysis inconclusive, rollout held"


@dataclass(frozen=True, slots=True)
class GateVerdict:
    """What the gate says about a wave now.

    ``outcome`` is set for pass (succeeded, or skipped when nobody was eligible),
    fail and abort; ``until`` tells a waiting scheduler when the grace period ends.
    """

    verdict: Verdict
    reason: str
    outcome: WaveOutcome | None = None
    until: datetime | None = None

    @classmethod
    def wait(cls, reason: str, until: datetime | None = None) -> GateVerdict:
        return cls(Verdict.WAIT, reason, None, until)

    @classmethod
    def passed(cls, reason: str, outcome: WaveOutcome) -> GateVerdict:
        return cls(Verdict.PASS, reason, outcome)

    @classmethod
    def failed(cls, reason: str) -> GateVerdict:
        return cls(Verdict.FAIL, reason, WaveOutcome.FAILED)

    @classmethod
    def aborted(cls, reason: str) -> GateVerdict:
        return cls(Verdict.ABORT, reason, WaveOutcome.ABORTED)

    @classmethod
    def held(cls, reason: str) -> GateVerdict:
        return cls(Verdict.HOLD, reason)


@dataclass(frozen=True, slots=True)
class GateContext:
    """Everything a gate rule may look at; ``analysis``: the wave's cohort
    aggregates when the policy's analysis judges this wave."""

    wave: int
    counters: WaveCounters
    started_at: datetime
    now: datetime
    policy: EffectivePolicy
    analysis: Observations | None = None

    def judgement(self) -> AnalysisJudgement | None:
        if self.analysis is None or self.policy.analysis is None:
            return None
        return judge_analysis(self.policy.analysis, self.analysis)


class GateRule(Protocol):
    """One rule: return a verdict to decide, or None to let the next rule judge."""

    name: ClassVar[str]

    def __call__(self, ctx: GateContext) -> GateVerdict | None: ...


def _ratio(n: int, d: int) -> str:
    return f"{n / d:.2f}"


def _prior(c: WaveCounters) -> str:
    return (
        f"; {c.prior_succeeded} of them in earlier attempts"
        if c.prior_succeeded
        else ""
    )


class ZeroEligible:
    name: ClassVar[str] = "zero_eligible"

    def __call__(self, ctx: GateContext) -> GateVerdict | None:
        c = ctx.counters
        if c.eligible > 0:
            return None
        if c.skipped == 0:
            # Nothing was planned in this wave: an empty trailing wave of a small
            # fleet is not "no eligible devices"; the plan as a whole is judged at
            # start.
            return GateVerdict.passed(
                f"wave {ctx.wave}: no devices in this wave, skipped",
                WaveOutcome.SKIPPED,
            )
        lost = f"no eligible devices ({c.skipped} in the wave, all skipped offline)"
        if ctx.policy.abort_on_zero_eligible:
            return GateVerdict.aborted(f"wave {ctx.wave}: {lost}")
        return GateVerdict.passed(
            f"wave {ctx.wave}: {lost}, skipped", WaveOutcome.SKIPPED
        )


class TooManyFailures:
    name: ClassVar[str] = "too_many_failures"

    def __call__(self, ctx: GateContext) -> GateVerdict | None:
        limit = ctx.policy.max_failures_per_wave
        if ctx.counters.failed <= limit:
            return None
        return GateVerdict.failed(
            f"wave {ctx.wave}: {ctx.counters.failed} failures > "
            f"max_failures_per_wave {limit}"
        )


class RatioUnreachable:
    name: ClassVar[str] = "ratio_unreachable"

    def __call__(self, ctx: GateContext) -> GateVerdict | None:
        c, minimum = ctx.counters, ctx.policy.min_success_ratio
        total = c.wave_eligible
        best = c.wave_succeeded + c.pending
        # Compare quotients, not ``best < minimum * eligible``: 0.7 * 10 is
        # 7.000000000000001 in binary floating point, while 7 / 10 == 0.7 exactly.
        if best / total >= minimum:
            return None
        if c.pending:
            return GateVerdict.failed(
                f"wave {ctx.wave}: success ratio at most {_ratio(best, total)} "
                f"< min_success_ratio {minimum:.2f}{_prior(c)}"
            )
        return GateVerdict.failed(
            f"wave {ctx.wave}: success ratio {_ratio(c.wave_succeeded, total)} "
            f"< min_success_ratio {minimum:.2f}{_prior(c)}"
        )


class Grace:
    name: ClassVar[str] = "grace"

    def __call__(self, ctx: GateContext) -> GateVerdict | None:
        until = ctx.started_at + timedelta(seconds=ctx.policy.grace_seconds)
        if ctx.now >= until:
            return None
        return GateVerdict.wait(f"grace period until {until.isoformat()}", until)


class AnalysisFailed:
    name: ClassVar[str] = "analysis_failed"

    def __call__(self, ctx: GateContext) -> GateVerdict | None:
        judged = ctx.judgement()
        if judged is None or not judged.failed:
            return None
        why = judged.reason(CheckOutcome.FAIL)
        return GateVerdict.failed(f"wave {ctx.wave}: analysis failed: {why}")


class AnalysisInconclusive:
    name: ClassVar[str] = "analysis_inconclusive"

    def __call__(self, ctx: GateContext) -> GateVerdict | None:
        judged = ctx.judgement()
        if judged is None or not judged.inconclusive:
            return None
        why = judged.reason(CheckOutcome.INCONCLUSIVE)
        return GateVerdict.held(f"wave {ctx.wave}: {ANALYSIS_HELD}: {why}")


class PendingDevices:
    name: ClassVar[str] = "pending_devices"

    def __call__(self, ctx: GateContext) -> GateVerdict | None:
        c = ctx.counters
        if c.pending == 0:
            return None
        return GateVerdict.wait(f"{c.pending} of {c.eligible} devices pending")


class AllFinished:
    name: ClassVar[str] = "all_finished"

    def __call__(self, ctx: GateContext) -> GateVerdict | None:
        c = ctx.counters
        judged = ctx.judgement()
        analysis = (
            f"; analysis passed: {judged.reason(CheckOutcome.PASS)}"
            if judged is not None and judged.passed
            else ""
        )
        return GateVerdict.passed(
            f"wave {ctx.wave}: {c.wave_succeeded} of {c.wave_eligible} succeeded "
            f"(ratio {_ratio(c.wave_succeeded, c.wave_eligible)}){_prior(c)}"
            f"{analysis}",
            WaveOutcome.SUCCEEDED,
        )


GATE_RULES: tuple[GateRule, ...] = (
    ZeroEligible(),
    TooManyFailures(),
    RatioUnreachable(),
    Grace(),
    AnalysisFailed(),
    PendingDevices(),
    AnalysisInconclusive(),
    AllFinished(),
)


def evaluate_gate(
    wave: int,
    counters: WaveCounters,
    started_at: datetime,
    now: datetime,
    policy: EffectivePolicy,
    rules: Sequence[GateRule] = GATE_RULES,
    analysis: Observations | None = None,
) -> GateVerdict:
    """Judge a running wave.

    Args:
        wave: The wave number (for reasons).
        counters: The wave's counters in the current attempt.
        started_at: When the wave started (aware).
        now: The current time (aware).
        policy: The effective policy.
        rules: The rules in priority order; the default is ``GATE_RULES``.
        analysis: The wave's cohort aggregates (None: no analysis judged).

    Returns:
        The first verdict a rule gives; WAIT if none does.

    Raises:
        ValueError: When a datetime is naive.
    """
    _require_aware("started_at", started_at)
    _require_aware("now", now)
    ctx = GateContext(wave, counters, started_at, now, policy, analysis)
    for rule in rules:
        verdict = rule(ctx)
        if verdict is not None:
            return verdict
    return GateVerdict.wait(f"wave {wave}: no rule decided")


def deadline_at(started_at: datetime, policy: EffectivePolicy) -> datetime:
    """Return when devices of a wave started at ``started_at`` time out."""
    return started_at + timedelta(seconds=policy.wave_deadline_seconds)


def deadline_passed(
    started_at: datetime, now: datetime, policy: EffectivePolicy
) -> bool:
    """Tell whether devices still pending in this wave now count as ``timed_out``.

    Raises:
        ValueError: When a datetime is naive.
    """
    _require_aware("started_at", started_at)
    _require_aware("now", now)
    return now >= deadline_at(started_at, policy)
