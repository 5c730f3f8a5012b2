"""Range header parsing: served interval, whole body, or 416."""

from __future__ import annotations

import pytest

from xdp47_api.ranges import RangeNotSatisfiable, byte_range, content_range


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("", None),
        ("items=0-1", None),  # another unit: ignored
        ("bytes=0-1, 5-6", None),  # several ranges: the whole body
        ("bytes=0-0", (0, 1)),
        ("bytes=0-", (0, 100)),
        ("bytes=90-200", (90, 100)),
        ("bytes=-10", (90, 100)),
        ("bytes=-500", (0, 100)),
        ("BYTES = 5-9", (5, 10)),
    ],
)
def test_satisfiable(header: str | None, expected: tuple[int, int] | None) -> None:
    assert byte_range(header, 100) == expected


@pytest.mark.parametrize(
    "header",
    [
        "bytes=100-",
        "bytes=5-4",
        "bytes=-0",
        "bytes=-",
        "bytes=x-1",
        "bytes=1",
        "bytes=,",
    ],
)
def test_unsatisfiable(header: str) -> None:
    with pytest.raises(RangeNotSatisfiable):
        byte_range(header, 100)


def test_empty_body_has_no_range() -> None:
    with pytest.raises(RangeNotSatisfiable):
        byte_range("bytes=-1", 0)


def test_content_range() -> None:
    assert content_range((0, 10), 100) == "bytes 0-9/100"
    assert content_range(None, 100) == "bytes */100"
