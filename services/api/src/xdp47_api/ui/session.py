"""Web UI sessions and CSRF.

Sign-in exchanges an API token for a server-side session: the browser gets a random
id in an HttpOnly, SameSite=Strict cookie (Secure over https); the database keeps
the SHA256 of that id and the SHA256 of the token (see ``PgUiSessionRepository``).
Every request re-resolves the token through ``auth.principal_for_digest`` so a
revoked or expired token sends the operator back to sign-in at once.

CSRF: each session has a synchronizer token. Every POST must echo it in the form
field ``csrf_token`` or the ``X-CSRF-Token`` header (htmx sends the header, set
once on ``<body hx-headers>``); a missing or wrong token is 403. The sign-in form,
which has no session yet, uses a double-submit cookie instead.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated

from fastapi import Depends, HTTPException, Request, Response

from xdp47_api.auth import Principal, act_as_principal, principal_for_digest
from xdp47_api.state import Services, ServicesDep
from xdp47_common.clock import utcnow
from xdp47_common.models import Scope

__all__ = [
    "COOKIE_PATH",
    "CSRF_FIELD",
    "CSRF_HEADER",
    "SESSION_COOKIE",
    "SESSION_TTL",
    "SIGNIN_COOKIE",
    "SessionDep",
    "SignInRequired",
    "UiError",
    "UiSession",
    "WriteSessionDep",
    "check_csrf",
    "clear_session_cookie",
    "current_session",
    "end_session",
    "start_session",
]

SESSION_COOKIE = "xdp47_session"
SIGNIN_COOKIE = "xdp47_signin"
SESSION_TTL = timedelta(hours=12)
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
COOKIE_PATH = "/ui"


class SignInRequired(Exception):
    """No valid session: the handler in ``install_ui`` sends the browser to sign-in
    with ``reason`` (a short code, never free text from the request)."""

    def __init__(self, reason: str = "required") -> None:
        super().__init__(reason)
        self.reason = reason


class UiError(Exception):
    """An error page with a status and a message for people."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class UiSession:
    principal: Principal
    csrf_token: str
    id_hash: bytes

    @property
    def tenant(self) -> str:
        return self.principal.tenant

    def can(self, scope: Scope | str) -> bool:
        return self.principal.has(Scope(scope))

    def require(self, scope: Scope) -> None:
        """403 for a POST the token may not make (pages hide such forms anyway)."""
        if not self.principal.has(scope):
            raise UiError(403, f"this token lacks the scope '{scope.value}'")


def _digest(value: str) -> bytes:
    return hashlib.sha256(value.encode()).digest()


def _secure(request: Request) -> bool:
    return request.url.scheme == "https"


def _reason_code(detail: str) -> str:
    for code in ("revoked", "expired", "unknown", "malformed"):
        if code in detail:
            return code
    return "required"


async def start_session(
    request: Request,
    response: Response,
    services: Services,
    principal: Principal,
    token_hash: bytes,
) -> None:
    """Create the session row and set the cookie on ``response``."""
    session_id = secrets.token_urlsafe(32)
    await services.repos.ui_sessions.create(
        id_hash=_digest(session_id),
        tenant=principal.tenant,
        token_hash=token_hash,
        csrf_token=secrets.token_urlsafe(32),
        expires_at=utcnow() + SESSION_TTL,
    )
    response.set_cookie(
        SESSION_COOKIE,
        session_id,
        max_age=int(SESSION_TTL.total_seconds()),
        path=COOKIE_PATH,
        httponly=True,
        samesite="strict",
        secure=_secure(request),
    )


def clear_session_cookie(response: Response) -> None:
    response.delete_cookie(
        SESSION_COOKIE, path=COOKIE_PATH, httponly=True, samesite="strict"
    )


async def end_session(request: Request, services: Services) -> None:
    raw = request.cookies.get(SESSION_COOKIE)
    if raw:
        await services.repos.ui_sessions.delete(_digest(raw))


async def current_session(request: Request, services: ServicesDep) -> UiSession:
    """The signed-in operator; ``SignInRequired`` when there is none any more."""
    raw = request.cookies.get(SESSION_COOKIE)
    if not raw or len(raw) > 128:
        raise SignInRequired()
    id_hash = _digest(raw)
    sessions = services.repos.ui_sessions
    record = await sessions.get(id_hash)
    if record is None:
        raise SignInRequired("expired_session")
    try:
        principal = await principal_for_digest(services, record.token_hash)
    except HTTPException as exc:
        await sessions.delete(id_hash)
        raise SignInRequired(_reason_code(str(exc.detail))) from exc
    if principal.tenant != record.tenant:
        await sessions.delete(id_hash)
        raise SignInRequired()
    act_as_principal(principal)
    return UiSession(principal=principal, csrf_token=record.csrf_token, id_hash=id_hash)


async def check_csrf(request: Request, expected: str) -> None:
    """403 unless the request echoes ``expected`` (header or form field)."""
    presented = request.headers.get(CSRF_HEADER)
    if presented is None:
        form = await request.form()
        value = form.get(CSRF_FIELD)
        presented = value if isinstance(value, str) else None
    if not presented or not hmac.compare_digest(presented, expected):
        raise UiError(
            403,
            "the form's CSRF token is missing or stale; reload the page and try again",
        )


async def write_session(
    request: Request, session: Annotated[UiSession, Depends(current_session)]
) -> UiSession:
    await check_csrf(request, session.csrf_token)
    return session


SessionDep = Annotated[UiSession, Depends(current_session)]
WriteSessionDep = Annotated[UiSession, Depends(write_session)]
