"""Who is acting in this request, for the audit trail.

``authenticate`` (REST) and the UI's session resolve the caller and name it here
(``act_as``); the repositories' writes read it (``audit_entry``) when they append
the audit record of their change in its transaction, with the request's
``X-Request-ID`` (``xdp47_common.logging.REQUEST_ID``). ``ActorScope`` (an ASGI
middleware) starts every request with nobody named, so an actor never leaks into
the next request served by the same task.

A write with no request behind it (``xdp47-admin``) names its own actor
(``ADMIN_ACTOR``); one with nobody named at all records ``system``.
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from starlette.types import ASGIApp, Receive, Scope, Send

from xdp47_common.logging import REQUEST_ID
from xdp47_common.models.audit import AuditEntry, AuditOutcome

__all__ = [
    "ADMIN_ACTOR",
    "SYSTEM_ACTOR",
    "Actor",
    "ActorScope",
    "act_as",
    "audit_entry",
    "current_actor",
]


@dataclass(frozen=True)
class Actor:
    """An actor as the trail records it: ``token:<id>`` and the token's name."""

    id: str
    name: str | None
    tenant: str | None = None


ADMIN_ACTOR = Actor(id="xdp47-admin", name="xdp47-admin")
SYSTEM_ACTOR = Actor(id="system", name=None)

_ACTOR: ContextVar[Actor | None] = ContextVar("xdp47_actor", default=None)


def act_as(actor: Actor) -> None:
    """Name the caller of this request (or command-line run)."""
    _ACTOR.set(actor)


def current_actor() -> Actor:
    return _ACTOR.get() or SYSTEM_ACTOR


def audit_entry(
    tenant: str,
    action: str,
    subject_type: str,
    subject_id: str | UUID,
    *,
    outcome: AuditOutcome = AuditOutcome.APPLIED,
    before: str | None = None,
    after: str | None = None,
    rollout_id: UUID | None = None,
    detail: dict[str, Any] | None = None,
) -> AuditEntry:
    """An entry of ``tenant``'s trail by the current actor in this request."""
    actor = current_actor()
    return AuditEntry(
        tenant=tenant,
        actor=actor.id,
        actor_name=actor.name,
        action=action,
        subject_type=subject_type,
        subject_id=str(subject_id),
        outcome=outcome,
        rollout_id=rollout_id,
        request_id=REQUEST_ID.get(),
        status_before=before,
        status_after=after,
        detail=detail or {},
    )


class ActorScope:
    """Every request starts with nobody named, and leaves nobody behind."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        token = _ACTOR.set(None)
        try:
            await self.app(scope, receive, send)
        finally:
            _ACTOR.reset(token)
