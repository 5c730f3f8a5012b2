"""Whole answers sent as plain ASGI messages, for middleware and raw routes that
answer without a framework response object."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from starlette.types import Send

__all__ = ["send_answer", "send_json"]

Headers = Sequence[tuple[bytes, bytes]]


async def send_answer(
    send: Send, status: int, body: bytes = b"", headers: Headers = ()
) -> None:
    """Send ``status``, ``headers`` (plus ``content-length`` when there is a body)
    and ``body``: one complete answer."""
    out = list(headers)
    if body:
        out.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": out})
    await send({"type": "http.response.body", "body": body})


async def send_json(
    send: Send, status: int, content: Any, headers: Headers = ()
) -> None:
    """``send_answer`` with ``content`` as the JSON body."""
    body = json.dumps(content).encode()
    await send_answer(
        send, status, body, [(b"content-type", b"application/json"), *headers]
    )
