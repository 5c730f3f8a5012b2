"""The heard-until watermark: offline and deadlines judged from what ingest heard."""

from __future__ import annotations

from datetime import timedelta

from hypothesis import given
from hypothesis import strategies as st

from tests.unit.rollout.support import T0
from xdp47_common.rollout import NOTHING_HEARD, advance_heard_until, offline_cutoff

S = timedelta(seconds=1)


def test_nothing_heard_judges_nobody_offline():
    """Right after a (re)start the scheduler has read nothing of the queue: a
    stale last_seen must not make a heartbeating device offline."""
    assert offline_cutoff(NOTHING_HEARD, 90 * S) is None


def test_offline_is_measured_back_from_the_watermark_not_the_clock():
    heard = advance_heard_until(NOTHING_HEARD, now=T0 + 60 * S, newest_committed=T0)
    assert heard == T0
    assert offline_cutoff(heard, 10 * S) == T0 - 10 * S


def test_a_drained_queue_brings_the_watermark_to_the_probe():
    heard = advance_heard_until(
        T0, now=T0 + 5 * S, newest_committed=T0 + S, drained_at=T0 + 4 * S
    )
    assert heard == T0 + 4 * S


def test_the_watermark_never_moves_back_nor_past_now():
    assert advance_heard_until(T0, now=T0 + S, newest_committed=T0 - S) == T0
    assert advance_heard_until(T0, now=T0 + S, drained_at=T0 + 9 * S) == T0 + S
    assert advance_heard_until(T0, now=T0 + S) == T0


@given(
    st.lists(
        st.tuples(
            st.integers(0, 100),
            st.one_of(st.none(), st.integers(0, 100)),
            st.one_of(st.none(), st.integers(0, 100)),
        ),
        max_size=30,
    )
)
def test_watermark_is_monotonic_and_bounded(steps):
    heard, now = NOTHING_HEARD, T0
    for advance, committed, drained in steps:
        now += advance * S
        new = advance_heard_until(
            heard,
            now=now,
            newest_committed=None if committed is None else T0 + committed * S,
            drained_at=None if drained is None else T0 + drained * S,
        )
        assert new >= heard
        assert new == heard or new <= now
        heard = new
