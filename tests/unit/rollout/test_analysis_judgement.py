"""Judging analysis checks (pass, fail, inconclusive) and what the gates and the
state machine do with them."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.unit.rollout.support import RID, T0, make_policy
from xdp47_common.rollout import (
    ANALYSIS_HELD,
    AnalysisPolicy,
    CheckOutcome,
    Cohort,
    CommandName,
    EventName,
    MetricAggregate,
    RolloutHold,
    RolloutState,
    RolloutStatus,
    Verdict,
    WaveCounters,
    WaveOutcome,
    accepts,
    decide,
    evaluate_gate,
    judge_analysis,
    parse_check,
    resume,
)
from xdp47_common.rollout.judgement import judge_check

U, B = Cohort.UPDATED, Cohort.BASELINE
ERR = "error_rate: updated - baseline <= 0.02"


def agg(mean: float, devices: int, samples: int | None = None) -> MetricAggregate:
    n = samples if samples is not None else devices * 2
    return MetricAggregate(devices=devices, samples=n, total=mean * n)


def analysis(*checks: str, min_devices: int = 3) -> AnalysisPolicy:
    return AnalysisPolicy.model_validate({"checks": checks, "min_devices": min_devices})


def test_a_difference_within_the_threshold_passes() -> None:
    r = judge_check(
        parse_check(ERR),
        {(U, "error_rate"): agg(0.03, 5), (B, "error_rate"): agg(0.02, 4)},
        3,
    )
    assert r.outcome is CheckOutcome.PASS
    assert r.value == pytest.approx(0.01)


def test_a_failing_check_names_the_metric_both_means_counts_and_threshold() -> None:
    r = judge_check(
        parse_check(ERR),
        {(U, "error_rate"): agg(0.105, 6), (B, "error_rate"): agg(0.005, 6)},
        3,
    )
    assert r.outcome is CheckOutcome.FAIL
    assert r.reason == (
        "error_rate: updated - baseline = 0.1 > 0.02; "
        "updated mean 0.105 (6 devices, 12 samples), "
        "baseline mean 0.005 (6 devices, 12 samples)"
    )


def test_a_ratio_check() -> None:
    check = parse_check("cpu: updated / baseline <= 1.3")
    ok = judge_check(check, {(U, "cpu"): agg(26, 3), (B, "cpu"): agg(20, 3)}, 3)
    bad = judge_check(check, {(U, "cpu"): agg(27, 3), (B, "cpu"): agg(20, 3)}, 3)
    assert (ok.outcome, bad.outcome) == (CheckOutcome.PASS, CheckOutcome.FAIL)


@pytest.mark.parametrize(
    ("updated", "baseline", "short"),
    [
        (2, 5, "updated 2 < min_devices 3"),
        (5, 2, "baseline 2 < min_devices 3"),
        (0, 0, "updated 0 < min_devices 3; baseline 0 < min_devices 3"),
    ],
)
def test_too_few_devices_on_a_side_is_inconclusive(
    updated: int, baseline: int, short: str
) -> None:
    obs = {}
    if updated:
        obs[(U, "error_rate")] = agg(0.5, updated)
    if baseline:
        obs[(B, "error_rate")] = agg(0.0, baseline)
    r = judge_check(parse_check(ERR), obs, 3)
    assert r.outcome is CheckOutcome.INCONCLUSIVE
    assert r.value is None
    assert f"too few devices ({short})" in r.reason


@given(
    updated=st.integers(0, 20),
    baseline=st.integers(0, 20),
    minimum=st.integers(1, 10),
    u_mean=st.floats(-1e6, 1e6),
    b_mean=st.floats(-1e6, 1e6),
)
def test_judged_only_with_min_devices_on_both_sides(
    updated: int, baseline: int, minimum: int, u_mean: float, b_mean: float
) -> None:
    obs = {(U, "m"): agg(u_mean, updated), (B, "m"): agg(b_mean, baseline)}
    r = judge_check(parse_check("m: updated - baseline <= 0"), obs, minimum)
    if updated < minimum or baseline < minimum:
        assert r.outcome is CheckOutcome.INCONCLUSIVE
    else:
        expected = (u_mean * updated * 2) / (updated * 2) - (b_mean * baseline * 2) / (
            baseline * 2
        )
        assert r.outcome is (CheckOutcome.PASS if expected <= 0 else CheckOutcome.FAIL)


def test_every_check_is_judged() -> None:
    j = judge_analysis(
        analysis(ERR, "cpu: updated / baseline <= 1.3", "mem: updated / baseline <= 2"),
        {
            (U, "error_rate"): agg(0.2, 3),
            (B, "error_rate"): agg(0.0, 3),
            (U, "cpu"): agg(10, 3),
            (B, "cpu"): agg(10, 3),
            (U, "mem"): agg(10, 3),
        },
    )
    assert [r.outcome for r in j.results] == [
        CheckOutcome.FAIL,
        CheckOutcome.PASS,
        CheckOutcome.INCONCLUSIVE,
    ]


# -- gates ------------------------------------------------------------------------


def _done(n: int = 4) -> WaveCounters:
    return WaveCounters(eligible=n, succeeded=n, failed=0, skipped=0, pending=0)


BAD = {(U, "error_rate"): agg(0.11, 3), (B, "error_rate"): agg(0.005, 3)}
GOOD = {(U, "error_rate"): agg(0.006, 3), (B, "error_rate"): agg(0.005, 3)}
THIN = {(U, "error_rate"): agg(0.11, 3), (B, "error_rate"): agg(0.005, 1)}


def gate(counters: WaveCounters, obs, *, after: float = 60, grace: float = 0):
    policy = make_policy(analysis=analysis(ERR), grace_seconds=grace)
    return evaluate_gate(
        1, counters, T0, T0 + timedelta(seconds=after), policy, analysis=obs
    )


def test_a_failing_check_fails_the_wave_even_with_devices_pending() -> None:
    pending = WaveCounters(eligible=5, succeeded=3, failed=0, skipped=0, pending=2)
    v = gate(pending, BAD)
    assert v.verdict is Verdict.FAIL
    assert v.outcome is WaveOutcome.FAILED
    assert v.reason.startswith("wave 1: analysis failed: error_rate: updated - ")


def test_the_analysis_waits_for_the_grace() -> None:
    assert gate(_done(), BAD, after=5, grace=10).verdict is Verdict.WAIT


def test_inconclusive_holds_only_once_the_wave_is_otherwise_done() -> None:
    pending = WaveCounters(eligible=5, succeeded=3, failed=0, skipped=0, pending=2)
    assert gate(pending, THIN).verdict is Verdict.WAIT
    held = gate(_done(), THIN)
    assert held.verdict is Verdict.HOLD
    assert held.reason.startswith(f"wave 1: {ANALYSIS_HELD}: error_rate: too few")
    assert "baseline 1 < min_devices 3" in held.reason


def test_a_passing_analysis_is_named_in_the_pass_reason() -> None:
    v = gate(_done(), GOOD)
    assert v.verdict is Verdict.PASS
    assert "; analysis passed: error_rate: updated - baseline = 0.001 <= 0.02" in (
        v.reason
    )


def test_without_analysis_the_gates_do_not_change() -> None:
    v = evaluate_gate(1, _done(), T0, T0 + timedelta(seconds=60), make_policy())
    assert v.verdict is Verdict.PASS
    assert "analysis" not in v.reason


# -- the state machine ----------------------------------------------------------


def _running(
    wave: int = 1, waves: int = 4, hold: RolloutHold | None = None
) -> RolloutState:
    return RolloutState(
        id=RID,
        status=RolloutStatus.RUNNING,
        waves=waves,
        current_wave=wave,
        current_wave_started_at=T0,
        attempt=1,
        hold=hold,
        held_since=None if hold is None else T0 + timedelta(seconds=60),
    )


NOW = T0 + timedelta(seconds=60)


def _decide(state: RolloutState, obs, counters: WaveCounters | None = None):
    policy = make_policy(analysis=analysis(ERR))
    return decide(state, counters or _done(), policy, NOW, analysis=obs)


def test_decide_fails_the_rollout_on_a_failing_check() -> None:
    d = _decide(_running(), BAD)
    assert d.status is RolloutStatus.FAILED
    assert d.finish_wave is not None
    assert d.finish_wave.outcome is WaveOutcome.FAILED
    assert "analysis failed: error_rate" in (d.reason or "")


def test_decide_holds_the_rollout_with_a_reason_naming_what_is_missing() -> None:
    first = _decide(_running(), THIN)
    assert first.changed
    assert first.status is RolloutStatus.RUNNING
    assert first.hold is RolloutHold.ANALYSIS_INCONCLUSIVE
    assert first.held_since == NOW
    assert first.start_wave is None
    assert first.finish_wave is None
    assert [e.name for e in first.events] == [EventName.ANALYSIS_HELD]
    assert "baseline 1 < min_devices 3" in (first.reason or "")


def test_a_held_rollout_waits_for_resume_even_once_enough_devices_reported() -> None:
    held = _running(hold=RolloutHold.ANALYSIS_INCONCLUSIVE)
    waiting = _decide(held, GOOD)
    assert not waiting.changed
    assert waiting.hold is RolloutHold.ANALYSIS_INCONCLUSIVE
    assert waiting.start_wave is None


def test_resume_judges_the_wave_again() -> None:
    held = _running(hold=RolloutHold.ANALYSIS_INCONCLUSIVE)
    assert accepts(CommandName.RESUME, held)
    assert not accepts(CommandName.PAUSE, held)
    assert not accepts(CommandName.PROMOTE, held)
    lifted = resume(held, "token:ops", NOW + timedelta(seconds=30))
    assert lifted.hold is None
    assert lifted.reason == (
        "resumed by token:ops after 30s held (analysis inconclusive): wave 1 is "
        "judged again"
    )
    moving = _running()
    assert _decide(moving, GOOD).start_wave == 2
    again = _decide(moving, THIN)
    assert again.hold is RolloutHold.ANALYSIS_INCONCLUSIVE


def test_no_observations_is_inconclusive_never_a_pass() -> None:
    d = _decide(_running(), None)
    assert [e.name for e in d.events] == [EventName.ANALYSIS_HELD]


def test_the_last_wave_is_not_analysed_and_says_so() -> None:
    d = _decide(_running(wave=4), None)
    assert d.status is RolloutStatus.COMPLETED
    assert d.finish_wave is not None
    assert "analysis not judged in the last wave" in d.finish_wave.reason
