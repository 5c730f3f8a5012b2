"""HTTP ``Range`` requests over a body of known size (RFC 9110 §14), single range.

``byte_range`` turns the header into the half-open interval to serve, ``None`` for
the whole body, or raises ``RangeNotSatisfiable`` (416). A unit other than
``bytes`` is ignored, as the RFC allows, and so is a list of several ranges (the
whole body is served: the agent and curl ask for one range at a time). A
malformed or unsatisfiable byte range is refused with 416.
"""

from __future__ import annotations

__all__ = ["RangeNotSatisfiable", "byte_range", "content_range"]


class RangeNotSatisfiable(Exception):
    """The Range header asks for bytes the body does not have, or is malformed."""

    def __init__(self, header: str, size: int) -> None:
        super().__init__(f"range {header!r} not satisfiable for {size} bytes")
        self.size = size


def _digits(text: str) -> int | None:
    text = text.strip()
    return int(text) if text.isdigit() and text.isascii() else None


def byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The ``[start, end)`` interval a ``Range`` header asks for.

    Returns:
        None to serve the whole body (no header, another unit, several ranges).

    Raises:
        RangeNotSatisfiable: a malformed byte range, or one outside the body.
    """
    if header is None or not header.strip():
        return None
    unit, sep, spec = header.strip().partition("=")
    if unit.strip().lower() != "bytes":
        return None
    if not sep or "," in spec:
        if sep and all(part.strip() for part in spec.split(",")):
            return None
        raise RangeNotSatisfiable(header, size)
    first, dash, last = spec.partition("-")
    if not dash:
        raise RangeNotSatisfiable(header, size)
    if not first.strip():
        suffix = _digits(last)
        if suffix is None or suffix == 0 or size == 0:
            raise RangeNotSatisfiable(header, size)
        return max(0, size - suffix), size
    start = _digits(first)
    end = _digits(last) if last.strip() else size - 1
    if start is None or end is None or end < start or start >= size:
        raise RangeNotSatisfiable(header, size)
    return start, min(end, size - 1) + 1


def content_range(interval: tuple[int, int] | None, size: int) -> str:
    """The ``Content-Range`` value of a 206 (interval) or a 416 (``None``)."""
    if interval is None:
        return f"bytes */{size}"
    return f"bytes {interval[0]}-{interval[1] - 1}/{size}"
