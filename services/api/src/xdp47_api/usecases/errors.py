"""The failures use cases raise, as the HTTP answers both callers give."""

from __future__ import annotations

from fastapi import HTTPException

__all__ = ["conflict", "not_found", "unprocessable"]


def not_found(what: str, ident: object) -> HTTPException:
    """The 404 for an id that is missing or belongs to another tenant."""
    return HTTPException(status_code=404, detail=f"{what} '{ident}' not found")


def conflict(detail: str) -> HTTPException:
    """The 409 of a request that conflicts with the current state."""
    return HTTPException(status_code=409, detail=detail)


def unprocessable(detail: str) -> HTTPException:
    """The 422 of input the models accept but the data refuses; ``detail``
    starts with the field (``body.artifact_id: …``)."""
    return HTTPException(status_code=422, detail=detail)
