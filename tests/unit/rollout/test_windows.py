"""Maintenance windows (``xdp47_common.rollout.windows``): parsing, DST, far zones,
midnight and the week's end, held to a minute-by-minute brute force."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from xdp47_common.rollout.windows import (
    WeeklyWindow,
    first_open_at,
    is_open,
    known_zone,
    parse_window,
    parse_windows,
    resolve_zone,
    window_state,
)

ZONES = [
    "UTC",
    "Europe/Berlin",
    "America/New_York",
    "Australia/Sydney",  # southern-hemisphere DST
    "Australia/Lord_Howe",  # a 30-minute DST shift
    "Pacific/Kiritimati",  # +14
    "Etc/GMT+12",  # -12
    "Asia/Kathmandu",  # +05:45
]

# Around the DST changes of 2026 and the week's end.
_START = datetime(2026, 1, 1, tzinfo=UTC)
instants = st.integers(0, 365 * 24 * 60).map(lambda m: _START + timedelta(minutes=m))
window_texts = st.builds(
    lambda days, s, e: f"{days} {s // 60:02d}:{s % 60:02d}-{e // 60:02d}:{e % 60:02d}",
    st.sampled_from(["Mon", "Sun", "Mon-Fri", "Fri-Mon", "Sat,Sun", "daily"]),
    st.integers(0, 23 * 60 + 45).map(lambda m: m - m % 15),
    st.integers(0, 23 * 60 + 45).map(lambda m: m - m % 15),
).filter(lambda t: t.split(" ")[1].split("-")[0] != t.split(" ")[1].split("-")[1])


def _brute_next_change(
    windows: tuple[WeeklyWindow, ...], zone: ZoneInfo, at: datetime
) -> datetime | None:
    state = is_open(windows, zone, at)
    t = at.replace(second=0, microsecond=0) + timedelta(minutes=1)
    for _ in range(15 * 24 * 60):
        if is_open(windows, zone, t) != state:
            return t
        t += timedelta(minutes=1)
    return None


def test_parse_forms() -> None:
    w = parse_window("Mon-Fri 01:00-05:00")
    assert w.days == frozenset(range(5))
    assert (w.start, w.end) == (60, 300)
    assert parse_window("Fri-Mon 22:00-02:00").days == frozenset({4, 5, 6, 0})
    assert parse_window("daily 00:00-24:00").end == 1440
    assert parse_window("Mon,Wed 23:30-00:30").text() == "Mon,Wed 23:30-00:30"


@pytest.mark.parametrize(
    "text",
    [
        "",
        "Mon",
        "Mon 25:00-26:00",
        "Xyz 01:00-02:00",
        "Mon 01:00-01:00",
        "Mon 01:60-02:00",
        "Mon 24:00-01:00",
    ],
)
def test_parse_refuses(text: str) -> None:
    with pytest.raises(ValueError, match=r"."):
        parse_window(text)


def test_zone_names() -> None:
    assert known_zone("Pacific/Kiritimati")
    assert not known_zone("Mars/Olympus")
    assert not known_zone("")
    assert resolve_zone("Mars/Olympus", "Europe/Berlin") == ZoneInfo("Europe/Berlin")
    assert resolve_zone(None, None) is UTC


def test_spring_forward_removes_a_window() -> None:
    """Berlin jumps 02:00 -> 03:00 on 2026-03-29: a Sunday 02:00-02:30 window does
    not happen that week and next opens a week later."""
    zone = ZoneInfo("Europe/Berlin")
    windows = parse_windows(["Sun 02:00-02:30"])
    before = datetime(2026, 3, 28, 12, tzinfo=UTC)
    opened = first_open_at(windows, zone, before)
    assert opened == datetime(2026, 4, 5, 0, 0, tzinfo=UTC)  # 02:00 CEST


def test_fall_back_doubles_a_window() -> None:
    """New York repeats 01:00-02:00 on 2026-11-01: a 01:00-02:00 window is open
    for two real hours, without a change in between."""
    zone = ZoneInfo("America/New_York")
    windows = parse_windows(["Sun 01:00-02:00"])
    state = window_state(windows, zone, datetime(2026, 11, 1, 5, 30, tzinfo=UTC))
    assert state.open
    assert state.since == datetime(2026, 11, 1, 5, 0, tzinfo=UTC)  # 01:00 EDT
    assert state.changes_at == datetime(2026, 11, 1, 7, 0, tzinfo=UTC)  # 02:00 EST


def test_far_zones_differ_by_a_day() -> None:
    """At 11:00 UTC it is 01:00 next day in Kiritimati (+14) and 23:00 the day
    before in Etc/GMT+12 (-12)."""
    windows = parse_windows(["Tue 00:30-01:30"])
    at = datetime(2026, 6, 1, 11, 0, tzinfo=UTC)  # Monday
    assert is_open(windows, ZoneInfo("Pacific/Kiritimati"), at)
    assert not is_open(windows, ZoneInfo("Etc/GMT+12"), at)
    opens = window_state(windows, ZoneInfo("Etc/GMT+12"), at).next_open
    assert opens == datetime(2026, 6, 2, 12, 30, tzinfo=UTC)


def test_window_crossing_the_weeks_end() -> None:
    windows = parse_windows(["Sun 23:00-01:00"])
    zone = ZoneInfo("UTC")
    assert is_open(windows, zone, datetime(2026, 6, 7, 23, 30, tzinfo=UTC))  # Sun
    assert is_open(windows, zone, datetime(2026, 6, 8, 0, 30, tzinfo=UTC))  # Mon
    assert not is_open(windows, zone, datetime(2026, 6, 8, 1, 0, tzinfo=UTC))
    assert not is_open(windows, zone, datetime(2026, 6, 6, 0, 30, tzinfo=UTC))


@settings(max_examples=60, deadline=None)
@given(
    texts=st.lists(window_texts, min_size=1, max_size=3),
    zone=st.sampled_from(ZONES),
    at=instants,
)
def test_next_change_matches_brute_force(
    texts: list[str], zone: str, at: datetime
) -> None:
    """The next change is the first minute whose state differs, whatever the
    zone and its DST changes; ``since`` is a change too; open means since <= at."""
    windows, tz = parse_windows(texts), ZoneInfo(zone)
    state = window_state(windows, tz, at)
    assert state.open == is_open(windows, tz, at)
    assert state.changes_at == _brute_next_change(windows, tz, at)
    if state.since is not None:
        assert state.since <= at
        assert is_open(windows, tz, state.since) == state.open
        assert is_open(windows, tz, state.since - timedelta(minutes=1)) != state.open
    if state.open:
        assert first_open_at(windows, tz, at) == at
    else:
        assert state.next_open == state.changes_at
        assert first_open_at(windows, tz, at) == state.changes_at


@settings(max_examples=40, deadline=None)
@given(text=window_texts, zone=st.sampled_from(ZONES), at=instants)
def test_first_open_is_open_and_nothing_before(
    text: str, zone: str, at: datetime
) -> None:
    windows, tz = parse_windows([text]), ZoneInfo(zone)
    opened = first_open_at(windows, tz, at)
    if opened is None:
        return
    assert opened >= at
    assert is_open(windows, tz, opened)
    if opened > at:
        assert not is_open(windows, tz, opened - timedelta(minutes=1))


def test_naive_instants_refused() -> None:
    windows = parse_windows(["daily 01:00-02:00"])
    with pytest.raises(ValueError, match="aware"):
        window_state(windows, UTC, datetime(2026, 1, 1))  # noqa: DTZ001
