"""Request ids: every HTTP request gets one, its log events carry it, and the
response returns it in ``X-Request-ID`` (``RequestBasicsMiddleware`` does it).

A client (or the gateway in front) may send ``X-Request-ID``; a value of at most
128 visible ASCII characters is kept, anything else is replaced by a fresh id so a
hostile header cannot forge log lines. The id is set in
``xdp47_common.logging.REQUEST_ID`` for the duration of the request; routes may
bind more (the API binds the caller's tenant once authenticated) with
``bind_request_context``.
"""

from __future__ import annotations

import itertools
import os
import re
from typing import Any

import structlog
from starlette.types import Scope

__all__ = ["REQUEST_ID_HEADER", "bind_request_context", "request_id_of"]

REQUEST_ID_HEADER = "X-Request-ID"
_ACCEPTABLE = re.compile(r"^[!-~]{1,128}$")
_PROCESS = os.urandom(8).hex()
_COUNTER = itertools.count(1)


def request_id_of(scope: Scope) -> str:
    """The client's acceptable ``X-Request-ID``, else a fresh random id."""
    for name, value in scope.get("headers", ()):
        if name == b"x-request-id":
            text = str(value.decode("latin-1"))
            if _ACCEPTABLE.match(text):
                return text
            break
    # 32 hex digits like uuid4().hex: 64 random bits drawn once per process and
    # a counter, unique across replicas and restarts without a random draw (a
    # system call) per request. An id to correlate logs, not a secret.
    return f"{_PROCESS}{next(_COUNTER):016x}"


def bind_request_context(**values: Any) -> None:
    """Add fields (e.g. ``tenant``) to the log events of the current request."""
    structlog.contextvars.bind_contextvars(**values)
