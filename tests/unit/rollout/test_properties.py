"""Hypothesis properties of planning, gates and the state machine."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from uuid import UUID

from hypothesis import example, given, settings
from hypothesis import strategies as st

from tests.unit.rollout.support import T0, make_policy
from xdp47_common.rollout import (
    TERMINAL_STATUSES,
    TRANSITIONS,
    RolloutState,
    RolloutStatus,
    Verdict,
    WaveCounters,
    decide,
    evaluate_gate,
    ordering_key,
    plan_waves,
    wave_bounds,
    wave_of_rank,
    wave_sizes,
)

# Shared CI cores make per-example deadlines flaky; a local setting, not a global
# profile, so other test modules keep theirs.
prop = settings(deadline=None, max_examples=200)

device_ids = st.lists(
    st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_-]{0,12}", fullmatch=True), max_size=200
)


@st.composite
def percentages(draw, min_waves=1):
    """Shares in percent summing to 100, zeros allowed (but not all zero)."""
    waves = draw(st.integers(min_waves, 12))
    cuts = sorted(
        draw(st.lists(st.integers(0, 100), min_size=waves - 1, max_size=waves - 1))
    )
    return [b - a for a, b in zip([0, *cuts], [*cuts, 100], strict=True)]


split = st.one_of(
    st.integers(1, 12).map(lambda w: (w, None)),
    percentages().map(lambda p: (len(p), p)),
)


@prop
@given(st.uuids(), device_ids, split, st.randoms())
def test_same_input_same_waves(rollout_id, devices, wave_split, rnd):
    waves, pct = wave_split
    shuffled = list(devices)
    rnd.shuffle(shuffled)
    assert plan_waves(rollout_id, devices, waves, pct) == plan_waves(
        rollout_id, shuffled, waves, pct
    )


@prop
@given(st.uuids(), device_ids, split)
def test_every_device_in_exactly_one_wave(rollout_id, devices, wave_split):
    waves, pct = wave_split
    plan = plan_waves(rollout_id, devices, waves, pct)
    assert len(plan) == waves
    flat = [d for wave in plan for d in wave]
    assert sorted(flat) == sorted(set(devices))
    assert [len(w) for w in plan] == wave_sizes(len(set(devices)), waves, pct)


@prop
@given(st.uuids(), device_ids, split)
def test_rank_rule_matches_plan(rollout_id, devices, wave_split):
    """The SQL rule (rank by key, wave = first bound >= rank) yields the plan."""
    waves, pct = wave_split
    ranked = sorted(set(devices), key=lambda d: (ordering_key(rollout_id, d), d))
    bounds = wave_bounds(len(ranked), waves, pct)
    plan = plan_waves(rollout_id, devices, waves, pct)
    for rank, device in enumerate(ranked, start=1):
        assert device in plan[wave_of_rank(rank, bounds) - 1]


@prop
@given(st.integers(0, 5000), st.integers(1, 100))
def test_even_sizes_differ_by_at_most_one_larger_first(n, waves):
    sizes = wave_sizes(n, waves)
    assert sum(sizes) == n
    assert max(sizes) - min(sizes) <= 1
    assert sizes == sorted(sizes, reverse=True)


@prop
@given(st.integers(0, 5000), percentages())
# Fewer devices than non-zero waves, the first share worth two devices: still
# one device for each of the first n non-zero waves.
@example(4, [50, 1, 1, 1, 47])
def test_percentage_sizes_follow_shares(n, pct):
    sizes = wave_sizes(n, len(pct), pct)
    assert sum(sizes) == n
    assert all(s >= 0 for s in sizes)
    assert all(s == 0 for s, p in zip(sizes, pct, strict=True) if p == 0)
    non_zero = [s for s, p in zip(sizes, pct, strict=True) if p > 0]
    if n >= len(non_zero):
        assert all(s >= 1 for s in non_zero)
    else:
        assert non_zero == [1] * n + [0] * (len(non_zero) - n)
    if all(n * p >= 100 for p in pct if p > 0):
        # Within rounding: no correction applied, each size is its share floored
        # or ceiled.
        assert all(abs(s - n * p / 100) < 1 for s, p in zip(sizes, pct, strict=True))


@st.composite
def wave_counters(draw, max_n=20):
    succeeded, failed, pending, skipped = (
        draw(st.integers(0, max_n)) for _ in range(4)
    )
    return WaveCounters(
        succeeded + failed + pending, succeeded, failed, skipped, pending
    )


policies = st.builds(
    make_policy,
    grace_seconds=st.sampled_from([0.0, 30.0, 120.0]),
    min_success_ratio=st.sampled_from([0.0, 0.5, 0.7, 0.9, 1.0]),
    max_failures_per_wave=st.integers(0, 5),
    abort_on_zero_eligible=st.booleans(),
    wave_deadline_seconds=st.sampled_from([60.0, 300.0]),
)


@prop
@given(wave_counters(), policies, st.integers(0, 400), st.data())
def test_more_failures_never_turn_fail_into_pass(c, policy, after, data):
    now = T0 + timedelta(seconds=after)
    before = evaluate_gate(1, c, T0, now, policy)
    movable = [f for f in ("succeeded", "pending") if getattr(c, f) > 0]
    if not movable:
        return
    source = data.draw(st.sampled_from(movable))
    worse = dataclasses.replace(
        c, failed=c.failed + 1, **{source: getattr(c, source) - 1}
    )
    after_verdict = evaluate_gate(1, worse, T0, now, policy)
    if before.verdict is Verdict.FAIL:
        assert after_verdict.verdict is Verdict.FAIL


@prop
@given(
    st.sampled_from(sorted(TERMINAL_STATUSES)),
    st.one_of(st.none(), wave_counters()),
    policies,
    st.integers(1, 5),
    st.integers(0, 10_000),
)
def test_terminal_states_absorb(status, counters, policy, wave, after):
    rollout = RolloutState(UUID(int=1), status, 5, wave, T0, 1)
    decision = decide(rollout, counters, policy, T0 + timedelta(seconds=after))
    assert not decision.changed
    assert decision.status is status
    assert (decision.start_wave, decision.finish_wave, decision.events) == (
        None,
        None,
        (),
    )


@settings(deadline=None, max_examples=300)
@given(
    st.integers(1, 6),
    policies,
    st.lists(st.tuples(wave_counters(max_n=6), st.integers(0, 200)), max_size=40),
)
def test_waves_only_move_forward(waves, policy, observations):
    """Over any sequence of observations, waves advance one at a time, statuses
    follow TRANSITIONS, and a terminal status never changes again."""
    now = T0
    rollout = RolloutState(UUID(int=2), RolloutStatus.RUNNING, waves, 1, now, 1)
    for counters, step in observations:
        now += timedelta(seconds=step)
        decision = decide(rollout, counters, policy, now)
        if rollout.status in TERMINAL_STATUSES:
            assert not decision.changed
            continue
        if decision.status is not rollout.status:
            assert decision.status in TRANSITIONS[rollout.status]
        assert rollout.current_wave is not None
        if decision.start_wave is not None:
            assert decision.start_wave == rollout.current_wave + 1
            assert decision.finish_wave is not None
            assert decision.finish_wave.wave == rollout.current_wave
        assert (decision.current_wave or 0) >= rollout.current_wave
        if decision.status in TERMINAL_STATUSES:
            assert decision.finish_wave is not None
        rollout = RolloutState(
            rollout.id,
            decision.status,
            waves,
            decision.current_wave,
            now if decision.start_wave else rollout.current_wave_started_at,
            decision.attempt,
            rollout.shortfall
            or bool(decision.finish_wave and (counters.failed or counters.skipped)),
        )


@prop
@given(wave_counters(), policies, st.integers(0, 400), st.integers(1, 20))
def test_earlier_successes_never_turn_a_pass_into_a_fail(c, policy, after, prior):
    """A retry's gates see the wave as a whole: counting the devices that applied
    in earlier attempts can only help it."""
    now = T0 + timedelta(seconds=after)
    alone = evaluate_gate(1, c, T0, now, policy)
    whole = evaluate_gate(
        1, dataclasses.replace(c, prior_succeeded=prior), T0, now, policy
    )
    if alone.verdict is Verdict.PASS:
        assert whole.verdict is Verdict.PASS


@prop
@given(wave_counters(), policies, st.integers(0, 1000), st.integers(0, 1000))
def test_no_time_out_before_the_queue_reached_the_deadline(c, policy, after, heard):
    now = T0 + timedelta(seconds=after)
    heard_until = T0 + timedelta(seconds=heard)
    rollout = RolloutState(UUID(int=3), RolloutStatus.RUNNING, 3, 1, T0, 1)
    decision = decide(rollout, c, policy, now, heard_until)
    if decision.timed_out_wave is not None:
        assert min(now, heard_until) >= T0 + timedelta(
            seconds=policy.wave_deadline_seconds
        )
