"""Helpers shared by the page modules: call the use cases (``xdp47_api.usecases``,
the same code path as the API) and turn their HTTP errors into UI errors."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TypeVar
from uuid import UUID

from fastapi import HTTPException, Request

from xdp47_api.state import Services
from xdp47_api.ui.session import UiError, UiSession
from xdp47_api.usecases import rollouts
from xdp47_common.models import Rollout, Scope
from xdp47_common.web import ServiceUnavailable

__all__ = ["call_api", "find_rollout", "is_htmx", "page_scope"]

T = TypeVar("T")


def is_htmx(request: Request) -> bool:
    return request.headers.get("HX-Request") == "true"


def page_scope(session: UiSession, scope: Scope) -> None:
    """A page the token may not read answers 403 (and is not in the menu)."""
    session.require(scope)


async def call_api(call: Awaitable[T]) -> T:
    """Await a use case; its HTTP errors become UI errors."""
    try:
        return await call
    except HTTPException as exc:
        raise UiError(exc.status_code, str(exc.detail)) from exc
    except ServiceUnavailable as exc:
        raise UiError(503, exc.detail) from exc


async def find_rollout(
    services: Services, session: UiSession, rollout_id: UUID
) -> Rollout:
    """The session's tenant's rollout, or the UI's 404."""
    return await call_api(rollouts.get(services, session.tenant, rollout_id))
