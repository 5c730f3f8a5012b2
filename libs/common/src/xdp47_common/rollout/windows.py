"""Maintenance windows: weekly ranges of local wall-clock time, in a device's zone.

A policy's ``maintenance_windows`` is a list such as ``["Mon-Fri 01:00-05:00",
"Sat 22:00-02:00"]``: days (``Mon``, ``Mon-Fri``, ``Fri-Mon``, ``Mon,Wed``,
``daily``) and a start and end time (``HH:MM``; an end of ``24:00`` is the
midnight after). The days name the day a window *starts*: an end at or before
the start crosses midnight into the next day (``Sun 23:00-01:00`` crosses the
week's end into Monday).

An instant is inside a window when the wall-clock time it shows in the zone is
inside one of the ranges. So a window that a spring-forward skips over (``Sun
02:00-02:30`` on the night clocks jump from 02:00 to 03:00) does not happen that
week, and one that a fall-back repeats (``01:00-02:00`` on the night clocks go
back from 02:00 to 01:00) is open twice, for two real hours. ``WindowState`` is
what the scheduler keeps per (rollout, zone): open or not, since when, and the
next instant that changes it.

Pure: ``now`` is an argument; zones come from ``zoneinfo``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta, tzinfo
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

__all__ = [
    "DAYS",
    "WeeklyWindow",
    "WindowState",
    "first_open_at",
    "is_open",
    "known_zone",
    "offsets_between",
    "parse_windows",
    "resolve_zone",
    "window_state",
    "zone_names",
    "zone_states",
]

DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_DAY_INDEX = {d.lower(): i for i, d in enumerate(DAYS)}
_MINUTES_PER_DAY = 24 * 60
_PATTERN = re.compile(
    r"^\s*(?P<days>[A-Za-z,\- ]+?)\s+(?P<start>\d{1,2}:\d{2})\s*-\s*"
    r"(?P<end>\d{1,2}:\d{2})\s*$"
)
# How far ahead the next change is looked for: a weekly window that a DST jump
# removed this week comes back the week after.
_HORIZON = timedelta(days=15)


@dataclass(frozen=True, slots=True)
class WeeklyWindow:
    """One weekly range: the days it starts on (0 = Monday) and its start and
    end in minutes after local midnight (``end <= start``: ends the next day)."""

    days: frozenset[int]
    start: int
    end: int

    def contains(self, weekday: int, minute: int) -> bool:
        """Whether local wall time (weekday, minute of day) is inside."""
        if self.start < self.end:
            return weekday in self.days and self.start <= minute < self.end
        # Crosses midnight: the evening of a listed day or the next morning.
        return (weekday in self.days and minute >= self.start) or (
            (weekday - 1) % 7 in self.days and minute < self.end
        )

    def text(self) -> str:
        days = ",".join(DAYS[d] for d in sorted(self.days))
        return f"{days} {_clock(self.start)}-{_clock(self.end)}"


@dataclass(frozen=True, slots=True)
class WindowState:
    """A zone's window at an instant: ``open``; ``since``, when the current
    state began (None: not within the horizon looked back, never for an open
    window found by ``window_state``); ``changes_at``, when it next changes
    (None: never within the horizon); ``next_open``: when a window next opens
    (``since`` for an open one)."""

    open: bool
    since: datetime | None
    changes_at: datetime | None
    next_open: datetime | None


def _clock(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def _minutes(text: str, *, end: bool) -> int:
    hours, _, mins = text.partition(":")
    h, m = int(hours), int(mins)
    if m > 59 or h > 24 or (h == 24 and (m != 0 or not end)):
        raise ValueError(f"{text!r} is not a time of day (HH:MM)")
    return h * 60 + m


def _days(text: str) -> frozenset[int]:
    text = text.strip().lower()
    if text in ("daily", "*", "every day"):
        return frozenset(range(7))
    days: set[int] = set()
    for part in text.replace(" ", "").split(","):
        first, sep, last = part.partition("-")
        if first not in _DAY_INDEX or (sep and last not in _DAY_INDEX):
            raise ValueError(
                f"{part!r} is not a day or day range (Mon..Sun, Mon-Fri, daily)"
            )
        a = _DAY_INDEX[first]
        b = _DAY_INDEX[last] if sep else a
        days.update((a + i) % 7 for i in range((b - a) % 7 + 1))
    return frozenset(days)


def parse_window(text: str) -> WeeklyWindow:
    """Parse ``"Mon-Fri 01:00-05:00"``.

    Raises:
        ValueError: With a message naming the part that is wrong.
    """
    match = _PATTERN.match(text)
    if match is None:
        raise ValueError(
            f"{text!r} is not a window: days and times, e.g. 'Mon-Fri 01:00-05:00'"
        )
    start = _minutes(match["start"], end=False)
    end = _minutes(match["end"], end=True)
    if start == end % _MINUTES_PER_DAY and end != _MINUTES_PER_DAY:
        raise ValueError(f"{text!r}: a window's start and end must differ")
    return WeeklyWindow(_days(match["days"]), start, end % _MINUTES_PER_DAY or 1440)


def parse_windows(texts: Iterable[str]) -> tuple[WeeklyWindow, ...]:
    """Parse a policy's list of windows (see ``parse_window``)."""
    return tuple(parse_window(t) for t in texts)


@lru_cache(maxsize=1024)
def _zone(name: str) -> ZoneInfo | None:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def known_zone(name: str) -> bool:
    """Whether ``name`` is an IANA time zone ``zoneinfo`` knows."""
    return bool(name) and _zone(name) is not None


def resolve_zone(name: str | None, default: str | None) -> tzinfo:
    """The zone ``name`` names, else ``default``'s, else UTC (unknown names
    count as not given)."""
    for candidate in (name, default):
        if candidate and (zone := _zone(candidate)) is not None:
            return zone
    return UTC


def zone_names() -> frozenset[str]:
    """Every IANA zone name ``zoneinfo`` offers (the scheduler keeps a window
    state per rollout for each, so a device's zone is always found)."""
    return frozenset(available_timezones())


def offsets_between(zone: tzinfo, start: datetime, end: datetime) -> tuple[object, ...]:
    """What decides every window in ``zone`` from ``start`` to ``end`` (aware):
    its UTC offset at ``start`` and each change after. Zones with the same
    answer have the same window states in that span (the scheduler computes
    one per distinct answer)."""
    changes = _offset_changes(zone, start, end)
    return (
        start.astimezone(zone).utcoffset(),
        *((t, t.astimezone(zone).utcoffset()) for t in changes),
    )


def _local_open(windows: Sequence[WeeklyWindow], local: datetime) -> bool:
    minute = local.hour * 60 + local.minute
    return any(w.contains(local.weekday(), minute) for w in windows)


def is_open(windows: Sequence[WeeklyWindow], zone: tzinfo, at: datetime) -> bool:
    """Whether the instant ``at`` (aware) is inside a window in ``zone``."""
    if at.tzinfo is None:
        raise ValueError("at must be aware")
    return _local_open(windows, at.astimezone(zone))


def _offset_changes(zone: tzinfo, start: datetime, end: datetime) -> list[datetime]:
    """The instants in [start, end] at which ``zone``'s UTC offset changes, to
    the second (probes every 6 hours, then bisection: no zone changes its
    offset twice within 6 hours)."""
    found: list[datetime] = []
    step = timedelta(hours=6)
    t = start
    offset = t.astimezone(zone).utcoffset()
    while t < end:
        nxt = min(t + step, end)
        nxt_offset = nxt.astimezone(zone).utcoffset()
        if nxt_offset != offset:
            lo, hi = t, nxt  # offset(lo) == offset, offset(hi) != offset
            while hi - lo > timedelta(seconds=1):
                mid = lo + (hi - lo) / 2
                if mid.astimezone(zone).utcoffset() == offset:
                    lo = mid
                else:
                    hi = mid
            found.append(hi.replace(microsecond=0))
            offset = nxt_offset
        t = nxt
    return found


def _candidates(
    windows: Sequence[WeeklyWindow], zone: tzinfo, start: datetime, end: datetime
) -> list[datetime]:
    """Every instant in (start, end] at which being inside a window may change:
    each range's local start and end on each day (both readings of a repeated
    wall time) and each change of the zone's offset. Between two of them the
    wall clock runs without a jump and crosses no bound, so the state holds."""
    out = set(_offset_changes(zone, start, end))
    first = start.astimezone(zone).date() - timedelta(days=1)
    days = (end - start).days + 3
    bounds = {m for w in windows for m in (w.start, w.end % _MINUTES_PER_DAY)}
    for i in range(days):
        day = first + timedelta(days=i)
        for minute in bounds:
            wall = datetime.combine(day, time(minute // 60, minute % 60))
            for fold in (0, 1):
                instant = wall.replace(tzinfo=zone, fold=fold).astimezone(UTC)
                # A wall time a jump skipped maps to an instant that does not
                # show it; the offset change covers that moment.
                if instant.astimezone(zone).replace(tzinfo=None) == wall:
                    out.add(instant)
    return sorted(t for t in out if start < t <= end)


def _next_change(
    windows: Sequence[WeeklyWindow], zone: tzinfo, at: datetime, state: bool
) -> datetime | None:
    for t in _candidates(windows, zone, at, at + _HORIZON):
        if _local_open(windows, t.astimezone(zone)) != state:
            return t
    return None


def _since(
    windows: Sequence[WeeklyWindow], zone: tzinfo, at: datetime, state: bool
) -> datetime | None:
    """When the state at ``at`` began (None: not within the horizon)."""
    candidates = _candidates(windows, zone, at - _HORIZON, at)
    since = None
    for t in reversed(candidates):
        if _local_open(windows, t.astimezone(zone)) != state:
            # ``since`` is the earliest candidate after the last change: the change.
            return since
        since = t
    return None


def window_state(
    windows: Sequence[WeeklyWindow], zone: tzinfo, now: datetime
) -> WindowState:
    """The window in ``zone`` at ``now`` (aware): see ``WindowState``.

    Raises:
        ValueError: When ``now`` is naive.
    """
    if now.tzinfo is None:
        raise ValueError("now must be aware")
    now = now.astimezone(UTC)
    state = _local_open(windows, now.astimezone(zone))
    changes_at = _next_change(windows, zone, now, state)
    since = _since(windows, zone, now, state)
    return WindowState(state, since, changes_at, since if state else changes_at)


def first_open_at(
    windows: Sequence[WeeklyWindow], zone: tzinfo, since: datetime
) -> datetime | None:
    """The first instant at or after ``since`` (aware) inside a window: ``since``
    itself when a window is open then (None: none within the horizon).

    A wave's deadline counts from it for a device in ``zone``: the device could
    not be told before.
    """
    if since.tzinfo is None:
        raise ValueError("since must be aware")
    since = since.astimezone(UTC)
    if _local_open(windows, since.astimezone(zone)):
        return since
    return _next_change(windows, zone, since, False)


def zone_states(
    windows: Sequence[WeeklyWindow],
    zones: Iterable[str | None],
    default: str | None,
    now: datetime,
) -> dict[str | None, tuple[str, WindowState]]:
    """For each zone key (a device's reported zone or label; None or '' for the
    tenant's default): the zone its windows are read in and their state at
    ``now``. Computed once per resolved zone, however many devices share it (the
    plan preview asks for the listed devices' keys)."""
    by_zone: dict[str, WindowState] = {}
    out: dict[str | None, tuple[str, WindowState]] = {}
    for key in zones:
        if key in out:
            continue
        zone = resolve_zone(key, default)
        name = str(zone)
        if name not in by_zone:
            by_zone[name] = window_state(windows, zone, now)
        out[key] = (name, by_zone[name])
    return out
