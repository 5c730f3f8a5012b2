"""Turn ``limit + 1`` fetched rows into a page and the cursor of the next one."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Protocol, TypeVar
from uuid import UUID

from xdp47_api.pagination import Page, encode_cursor

__all__ = ["page_of", "time_id_key"]

T = TypeVar("T")


class _Timed(Protocol):
    @property
    def id(self) -> UUID: ...
    @property
    def created_at(self) -> datetime: ...


def page_of(
    items: Sequence[T], limit: int, key: Callable[[T], tuple[str | int, ...]]
) -> Page[T]:
    """Callers fetch ``limit + 1`` rows: the extra one proves a next page exists."""
    if len(items) <= limit:
        return Page(list(items), None)
    kept = list(items[:limit])
    return Page(kept, encode_cursor(*key(kept[-1])))


def time_id_key(item: _Timed) -> tuple[str, str]:
    """The ``(created_at, id)`` sort key most lists page by."""
    return (item.created_at.isoformat(), str(item.id))
