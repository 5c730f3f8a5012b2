"""Gate rules over wave counters."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta

import pytest

from tests.unit.rollout.support import T0, make_policy
from xdp47_common.rollout import (
    GATE_RULES,
    GateVerdict,
    Verdict,
    WaveCounters,
    WaveOutcome,
    deadline_at,
    deadline_passed,
    evaluate_gate,
)


def counters(succeeded=0, failed=0, pending=0, skipped=0):
    return WaveCounters(
        eligible=succeeded + failed + pending,
        succeeded=succeeded,
        failed=failed,
        skipped=skipped,
        pending=pending,
    )


def judge(c, *, after=60.0, wave=1, **policy):
    return evaluate_gate(
        wave, c, T0, T0 + timedelta(seconds=after), make_policy(**policy)
    )


def test_counters_must_add_up():
    with pytest.raises(ValueError, match="must equal eligible 5"):
        WaveCounters(eligible=5, succeeded=1, failed=1, skipped=0, pending=1)
    with pytest.raises(ValueError, match="failed must be >= 0"):
        WaveCounters(eligible=0, succeeded=1, failed=-1, skipped=0, pending=0)


def test_from_run_derives_pending():
    assert WaveCounters.from_run(10, 6, 1, 2).pending == 3


def test_failures_over_the_limit_fail_even_in_grace():
    verdict = judge(
        counters(failed=3, pending=7),
        after=1,
        wave=2,
        max_failures_per_wave=2,
        grace_seconds=300,
    )
    assert verdict == GateVerdict.failed("wave 2: 3 failures > max_failures_per_wave 2")
    assert verdict.outcome is WaveOutcome.FAILED


def test_failures_at_the_limit_do_not_fail():
    verdict = judge(
        counters(succeeded=8, failed=2), max_failures_per_wave=2, min_success_ratio=0.8
    )
    assert verdict.verdict is Verdict.PASS


def test_final_ratio_below_minimum_fails():
    verdict = judge(
        counters(succeeded=1, failed=1), max_failures_per_wave=5, min_success_ratio=0.9
    )
    assert verdict == GateVerdict.failed(
        "wave 1: success ratio 0.50 < min_success_ratio 0.90"
    )


def test_unreachable_ratio_fails_before_devices_finish():
    verdict = judge(
        counters(succeeded=1, failed=4, pending=5),
        max_failures_per_wave=10,
        min_success_ratio=0.7,
    )
    assert verdict.verdict is Verdict.FAIL
    assert (
        verdict.reason == "wave 1: success ratio at most 0.60 < min_success_ratio 0.70"
    )


def test_ratio_exactly_at_minimum_passes_despite_float_rounding():
    """0.7 * 10 is 7.000000000000001 in floating point; 7 of 10 must still pass."""
    verdict = judge(
        counters(succeeded=7, failed=3), max_failures_per_wave=3, min_success_ratio=0.7
    )
    assert verdict.verdict is Verdict.PASS


def test_grace_period_waits_with_its_end():
    verdict = judge(counters(succeeded=10), after=10, grace_seconds=30)
    until = T0 + timedelta(seconds=30)
    assert verdict == GateVerdict.wait(f"grace period until {until.isoformat()}", until)
    assert (
        judge(counters(succeeded=10), after=30, grace_seconds=30).verdict
        is Verdict.PASS
    )


def test_pending_devices_wait_even_when_pass_is_certain():
    verdict = judge(
        counters(succeeded=9, pending=1), min_success_ratio=0.5, max_failures_per_wave=5
    )
    assert verdict == GateVerdict.wait("1 of 10 devices pending")


def test_all_succeeded_passes():
    verdict = judge(counters(succeeded=4), wave=3)
    assert verdict == GateVerdict.passed(
        "wave 3: 4 of 4 succeeded (ratio 1.00)", WaveOutcome.SUCCEEDED
    )


def test_an_empty_wave_passes_whatever_the_policy():
    """Trailing waves of a fleet smaller than the number of waves hold nobody:
    they pass, even under abort_on_zero_eligible (the plan as a whole is judged
    at start)."""
    for flag in (True, False):
        verdict = judge(counters(), wave=4, abort_on_zero_eligible=flag)
        assert verdict == GateVerdict.passed(
            "wave 4: no devices in this wave, skipped", WaveOutcome.SKIPPED
        )


def test_a_wave_that_lost_every_device_aborts_or_skips_by_policy():
    c = counters(skipped=3)
    aborted = judge(c, wave=2, abort_on_zero_eligible=True, grace_seconds=999)
    assert aborted == GateVerdict.aborted(
        "wave 2: no eligible devices (3 in the wave, all skipped offline)"
    )
    assert aborted.outcome is WaveOutcome.ABORTED
    passed = judge(c, wave=2, abort_on_zero_eligible=False, grace_seconds=999)
    assert passed == GateVerdict.passed(
        "wave 2: no eligible devices (3 in the wave, all skipped offline), skipped",
        WaveOutcome.SKIPPED,
    )


def test_a_retry_judges_the_wave_as_a_whole():
    """Three of four applied in attempt 1; the fourth fails again in the retry:
    3 of 4 (0.75) passes min_success_ratio 0.5, where 0 of 1 would fail."""
    retry = WaveCounters(
        eligible=1, succeeded=0, failed=1, skipped=0, pending=0, prior_succeeded=3
    )
    verdict = judge(retry, min_success_ratio=0.5, max_failures_per_wave=1)
    assert verdict == GateVerdict.passed(
        "wave 1: 3 of 4 succeeded (ratio 0.75); 3 of them in earlier attempts",
        WaveOutcome.SUCCEEDED,
    )
    alone = dataclasses.replace(retry, prior_succeeded=0)
    assert judge(alone, min_success_ratio=0.5, max_failures_per_wave=1) == (
        GateVerdict.failed("wave 1: success ratio 0.00 < min_success_ratio 0.50")
    )
    # The ratio still fails when the wave as a whole misses it.
    low = dataclasses.replace(retry, prior_succeeded=1)
    assert judge(low, min_success_ratio=0.9, max_failures_per_wave=1) == (
        GateVerdict.failed(
            "wave 1: success ratio 0.50 < min_success_ratio 0.90; "
            "1 of them in earlier attempts"
        )
    )


def test_rules_that_never_decide_leave_the_wave_waiting():
    verdict = evaluate_gate(1, counters(succeeded=1), T0, T0, make_policy(), rules=[])
    assert verdict.verdict is Verdict.WAIT
    assert [rule.name for rule in GATE_RULES][:2] == [
        "zero_eligible",
        "too_many_failures",
    ]


def test_naive_datetimes_are_rejected():
    naive = datetime(2025, 1, 1)  # noqa: DTZ001 -- the point of the test
    with pytest.raises(ValueError, match="started_at must be timezone-aware"):
        evaluate_gate(1, counters(), naive, T0, make_policy())
    with pytest.raises(ValueError, match="now must be timezone-aware"):
        deadline_passed(T0, naive, make_policy())


def test_deadline():
    policy = make_policy(wave_deadline_seconds=60)
    assert deadline_at(T0, policy) == T0 + timedelta(seconds=60)
    assert not deadline_passed(T0, T0 + timedelta(seconds=59), policy)
    assert deadline_passed(T0, T0 + timedelta(seconds=60), policy)
