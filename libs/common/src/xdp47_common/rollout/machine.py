"""The rollout state machine: what to do next, given the state, counters and time.

``decide`` is called on every relevant heartbeat batch and on the timer for a
running rollout; the operator commands are in ``commands``. All are pure: the
scheduler locks the rollout's row (``SELECT ... FOR UPDATE``), loads a
``RolloutState`` and the current wave's ``WaveCounters``, applies the returned
``Decision`` in the same transaction and publishes its events after commit.

Rules: waves only move forward within an attempt; a wave that passes starts the
next one, or ends the rollout ``completed`` (every eligible device applied) or
``partial`` (the gates passed, but some device of this attempt failed or was
skipped); a failing gate ends it ``failed``; a wave that had devices and lost them
all ends it ``aborted`` under ``abort_on_zero_eligible``. Wave deadlines are judged
against ``heard_until`` (``liveness``), never against a clock the heartbeat queue
has not caught up with. Terminal statuses absorb: ``decide`` never changes them.

A held rollout (``RolloutHold``: paused, awaiting approval, analysis
inconclusive) does not move:
``decide`` answers a no-op, so no gate judges and no wave starts until the hold
is lifted by a command (``steering``). A wave that passes while the next one is
in the policy's ``approval_before_waves`` closes and puts the rollout on hold
``awaiting_approval`` instead of starting it. A promoted wave (``grace_skipped``)
is judged without the rest of its grace. A wave whose devices all finished but
whose telemetry analysis has too few devices on a side puts the rollout on hold
``analysis_inconclusive`` (event ``analysis_held``) until an operator resumes it.
"""

from __future__ import annotations

from datetime import datetime

from xdp47_common.rollout.decision import (
    Decision,
    DecisionEvent,
    EventName,
    RolloutState,
    WaveFinish,
    finish,
    no_op,
    wave_start,
)
from xdp47_common.rollout.gates import (
    GateVerdict,
    Verdict,
    WaveCounters,
    deadline_passed,
    evaluate_gate,
)
from xdp47_common.rollout.judgement import Observations
from xdp47_common.rollout.policy import EffectivePolicy
from xdp47_common.rollout.status import RolloutHold, RolloutStatus, WaveOutcome

__all__ = ["decide"]


def _judge(
    rollout: RolloutState,
    wave: int,
    started_at: datetime,
    current: WaveCounters,
    policy: EffectivePolicy,
    now: datetime,
    analysis: Observations | None,
) -> GateVerdict:
    if rollout.attempt > 1 and current.eligible == 0 and current.skipped == 0:
        # A retry re-runs only failed and skipped devices; a wave that had none is
        # not "a wave with no eligible device" in the abort_on_zero_eligible sense.
        return GateVerdict.passed(
            f"wave {wave}: nothing to retry, skipped", WaveOutcome.SKIPPED
        )
    if policy.analysis is None or wave >= rollout.waves:
        # The last wave leaves no device of the rollout to compare with.
        analysis = None
    elif analysis is None:
        analysis = {}  # nothing observed: inconclusive, never a silent pass
    return evaluate_gate(wave, current, started_at, now, policy, analysis=analysis)


def _hold(rollout: RolloutState, wave: int, reason: str, now: datetime) -> Decision:
    """Hold the rollout ``analysis_inconclusive`` from ``now``, the reason saying
    which check lacked which devices; a resume judges the wave again."""
    return Decision(
        status=rollout.status,
        attempt=rollout.attempt,
        current_wave=wave,
        reason=reason,
        events=(DecisionEvent(EventName.ANALYSIS_HELD, wave, reason=reason),),
        hold=RolloutHold.ANALYSIS_INCONCLUSIVE,
        held_since=now,
        skip_grace=rollout.grace_skipped,
    )


def decide(
    rollout: RolloutState,
    current: WaveCounters | None,
    policy: EffectivePolicy,
    now: datetime,
    heard_until: datetime | None = None,
    analysis: Observations | None = None,
    window_waiting: bool = False,
    window_opened: datetime | None = None,
) -> Decision:
    """Decide the next step of a rollout from the counters of its current wave.

    Args:
        rollout: The rollout as stored.
        current: Counters of ``rollout.current_wave`` in ``rollout.attempt``;
            required when the rollout is running with a current wave.
        policy: The effective policy.
        now: The current time (aware).
        heard_until: The time up to which every heartbeat ingest accepted has
            been committed (``liveness``); the wave deadline is judged against
            it, so devices whose reports wait in the queue never time out. None:
            caught up (``now``).
        analysis: The running aggregates of the current wave's cohorts, when
            ``policy.analysis`` is set; the last wave is never analysed (no
            device is left to compare with).
        window_waiting: Under maintenance windows: a device of the wave still
            updating waits for its window to open, so the wave does not time
            out.
        window_opened: Under maintenance windows: the latest first opening
            among the zones of the wave's devices still updating; the deadline
            counts from it (None: from the wave's start).

    Returns:
        The decision; a no-op unless the rollout is running and something is due.

    Raises:
        ValueError: When a running rollout lacks its wave's start time or counters,
            or a datetime is naive.
    """
    if rollout.status is not RolloutStatus.RUNNING:
        return no_op(rollout, f"rollout is {rollout.status}")
    if rollout.hold is not None:
        return no_op(rollout, f"rollout is held: {rollout.hold}")
    if rollout.grace_skipped:
        policy = policy.model_copy(update={"grace_seconds": 0.0})
    wave = rollout.current_wave
    if wave is None:
        # A running rollout always has a wave; repair a lost wave start.
        return wave_start(rollout, 1, "wave 1 started")
    started_at = rollout.current_wave_started_at
    if started_at is None or current is None:
        raise ValueError(
            f"running rollout {rollout.id} wave {wave} needs its start time "
            "and counters"
        )
    verdict = _judge(rollout, wave, started_at, current, policy, now, analysis)
    if verdict.verdict is Verdict.HOLD:
        return _hold(rollout, wave, verdict.reason, now)
    if verdict.verdict is Verdict.WAIT:
        heard = now if heard_until is None else min(now, heard_until)
        deadline_start = max(started_at, window_opened or started_at)
        if (
            current.pending
            and not window_waiting
            and deadline_passed(deadline_start, heard, policy)
        ):
            reason = (
                f"wave {wave}: {current.pending} devices timed_out after "
                f"{policy.wave_deadline_seconds:g}s"
            )
            return Decision(
                status=rollout.status,
                attempt=rollout.attempt,
                current_wave=wave,
                reason=reason,
                timed_out_wave=wave,
                events=(DecisionEvent(EventName.WAVE_TIMED_OUT, wave, reason=reason),),
            )
        return no_op(rollout, verdict.reason)
    outcome = verdict.outcome
    assert outcome is not None  # pass and fail verdicts carry an outcome
    last = wave >= rollout.waves
    if verdict.verdict is Verdict.PASS and policy.analysis is not None and last:
        verdict = GateVerdict.passed(
            f"{verdict.reason}; analysis not judged in the last wave: no device "
            "left to compare with",
            outcome,
        )
    closed = WaveFinish(wave, outcome, verdict.reason)
    finished = DecisionEvent(EventName.WAVE_FINISHED, wave, reason=verdict.reason)
    if verdict.verdict is Verdict.FAIL:
        return finish(rollout, RolloutStatus.FAILED, closed, finished, verdict.reason)
    if verdict.verdict is Verdict.ABORT:
        return finish(rollout, RolloutStatus.ABORTED, closed, finished, verdict.reason)
    if wave < rollout.waves and policy.needs_approval(wave + 1):
        waiting = f"wave {wave + 1} waits for approval"
        return Decision(
            status=RolloutStatus.RUNNING,
            attempt=rollout.attempt,
            current_wave=wave,
            reason=f"{verdict.reason}; {waiting}",
            finish_wave=closed,
            events=(
                finished,
                DecisionEvent(EventName.AWAITING_APPROVAL, wave + 1, reason=waiting),
            ),
            hold=RolloutHold.AWAITING_APPROVAL,
            held_since=now,
        )
    if wave < rollout.waves:
        step = wave_start(rollout, wave + 1, f"wave {wave + 1} started")
        return Decision(
            status=step.status,
            attempt=step.attempt,
            current_wave=step.current_wave,
            reason=verdict.reason,
            start_wave=step.start_wave,
            finish_wave=closed,
            events=(finished, *step.events),
        )
    if rollout.shortfall or current.failed or current.skipped:
        status = RolloutStatus.PARTIAL
        reason = f"all {rollout.waves} waves passed with failed or skipped devices"
    else:
        status, reason = RolloutStatus.COMPLETED, f"all {rollout.waves} waves passed"
    return finish(rollout, status, closed, finished, reason)
