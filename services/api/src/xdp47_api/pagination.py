"""Keyset pagination: opaque cursors and the ``Link``/``X-Next-Cursor`` headers.

A cursor is the sort key of the last row of a page, JSON-encoded and base64url'd.
Lists are plain JSON arrays (the seed's scripts expect arrays), so the next page
is announced in headers only.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Generic, TypeVar
from uuid import UUID

from fastapi import HTTPException, Query, Request, Response

__all__ = [
    "DEFAULT_LIMIT",
    "MAX_LIMIT",
    "CursorParam",
    "LimitParam",
    "Page",
    "decode_cursor",
    "encode_cursor",
    "invalid_cursor",
    "publish_page",
    "time_id_cursor",
]

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000

T = TypeVar("T")

LimitParam = Annotated[
    int, Query(ge=1, le=MAX_LIMIT, description="Page size (default 100, max 1000).")
]
CursorParam = Annotated[
    str | None,
    Query(max_length=512, description="Opaque cursor from X-Next-Cursor."),
]


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    next_cursor: str | None


def encode_cursor(*values: str | int) -> str:
    raw = json.dumps(list(values), separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def invalid_cursor() -> HTTPException:
    """The 422 for a cursor this server did not hand out."""
    return HTTPException(status_code=422, detail="query.cursor: invalid cursor")


def decode_cursor(cursor: str, arity: int) -> list[str | int]:
    """Decode a cursor of ``arity`` values; 422 naming ``cursor`` when invalid."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        values = json.loads(raw)
    except (binascii.Error, ValueError) as exc:
        raise invalid_cursor() from exc
    if (
        not isinstance(values, list)
        or len(values) != arity
        or not all(isinstance(v, str | int) for v in values)
    ):
        raise invalid_cursor()
    return values


def time_id_cursor(cursor: str | None) -> tuple[datetime, UUID] | None:
    """Decode a ``(created_at, id)`` cursor."""
    if cursor is None:
        return None
    at, ident = decode_cursor(cursor, 2)
    try:
        return datetime.fromisoformat(str(at)), UUID(str(ident))
    except ValueError as exc:
        raise invalid_cursor() from exc


def publish_page(request: Request, response: Response, page: Page[T]) -> list[T]:
    """Announce the next page in headers and return the items."""
    if page.next_cursor is not None:
        url = request.url.include_query_params(cursor=page.next_cursor)
        response.headers["Link"] = f'<{url}>; rel="next"'
        response.headers["X-Next-Cursor"] = page.next_cursor
    return page.items
