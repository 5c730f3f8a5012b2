"""Figure lines of the fault and security suites, shown at the end of a run.

A scenario records its line with ``record(section, line)``. The root conftest
moves the lines recorded during a test into that test's report
(``user_properties``), and collects them from the reports: so the summary shows
them whether the suite ran in one process or across pytest-xdist workers (whose
reports reach the controller, their module globals do not).
"""

from __future__ import annotations

__all__ = ["SHOWN", "collect", "drain", "record"]

_KEY = "xdp47_figure"

# Recorded in this process, not yet attached to a report.
_PENDING: list[tuple[str, str]] = []
# Collected from the reports, by section, in the order they arrived.
SHOWN: dict[str, list[str]] = {}


def record(section: str, line: str) -> None:
    """Record a figure line under ``section`` (and print it, visible with ``-s``)."""
    _PENDING.append((section, line))
    print(line)  # noqa: T201 - the figure line is the scenario's output


def drain() -> list[tuple[str, object]]:
    """The lines recorded since the last call, as report ``user_properties``."""
    taken: list[tuple[str, object]] = [(_KEY, pair) for pair in _PENDING]
    _PENDING.clear()
    return taken


def collect(user_properties: list[tuple[str, object]]) -> None:
    """Keep the figure lines a report carries."""
    for key, value in user_properties:
        if key == _KEY and isinstance(value, (tuple, list)) and len(value) == 2:
            section, line = value
            SHOWN.setdefault(str(section), []).append(str(line))
