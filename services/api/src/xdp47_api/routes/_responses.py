"""OpenAPI response declarations shared by the routes, so that every operation
documents the errors it can answer."""

from __future__ import annotations

from typing import Any

from xdp47_common.web import ErrorBody

__all__ = ["errors"]

_DESCRIPTIONS = {
    400: "Request body is not decodable (e.g. not UTF-8 JSON)",
    401: "Missing, malformed, unknown, expired or revoked bearer token",
    403: "The token lacks the scope this operation needs",
    404: "No such resource in the caller's tenant",
    409: "Conflicts with the current state",
    413: "Request body larger than the configured limit",
    415: "Unsupported request content type",
    416: "Range not satisfiable",
    422: "Invalid input; the message names the field",
    429: "The token is over its rate limit; retry after Retry-After seconds",
    503: "Database or message broker unavailable; retry after Retry-After seconds",
}


def errors(*extra: int) -> dict[int | str, dict[str, Any]]:
    """401, 403, 422, 429 and 503 for every authenticated operation, plus
    ``extra``."""
    codes = {401, 403, 422, 429, 503, *extra}
    if 413 in codes:  # an operation with a body: FastAPI answers 400 to bad bytes
        codes.add(400)
    return {
        c: {"model": ErrorBody, "description": _DESCRIPTIONS[c]} for c in sorted(codes)
    }
