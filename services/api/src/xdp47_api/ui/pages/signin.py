"""Sign-in with an API token, sign-out, and ``/ui`` itself."""

from __future__ import annotations

import hmac
import secrets
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import RedirectResponse, Response

from xdp47_api.auth import principal_for_secret
from xdp47_api.state import ServicesDep
from xdp47_api.ui.session import (
    COOKIE_PATH,
    CSRF_FIELD,
    SIGNIN_COOKIE,
    SessionDep,
    UiError,
    check_csrf,
    clear_session_cookie,
    end_session,
    start_session,
)
from xdp47_api.ui.templating import NAV, render
from xdp47_common.tokens import hash_secret

__all__ = ["router"]

router = APIRouter(prefix="/ui", include_in_schema=False)

REASONS = {
    "required": "Sign in with an API token.",
    "expired_session": "Your session ended; sign in again.",
    "revoked": "The token of your session was revoked; sign in with another one.",
    "expired": "The token of your session expired; sign in with another one.",
    "unknown": "The token of your session no longer exists; sign in again.",
    "malformed": "Sign in with an API token.",
    "signed_out": "You are signed out.",
}


def _signin_page(
    request: Request, *, message: str | None, error: str | None, status: int = 200
) -> Response:
    # Double-submit token: the session-less sign-in form still needs CSRF
    # protection (login CSRF would sign a victim into the attacker's tenant).
    token = secrets.token_urlsafe(24)
    response = render(
        request,
        "signin.html",
        None,
        status=status,
        signin_csrf=token,
        message=message,
        error=error,
    )
    response.set_cookie(
        SIGNIN_COOKIE,
        token,
        max_age=3600,
        path=COOKIE_PATH,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return response


@router.get("/signin")
async def signin_form(
    request: Request, reason: Annotated[str | None, Query(max_length=32)] = None
) -> Response:
    return _signin_page(request, message=REASONS.get(reason or ""), error=None)


@router.post("/signin")
async def signin(request: Request, services: ServicesDep) -> Response:
    form = await request.form()
    presented = form.get(CSRF_FIELD)
    expected = request.cookies.get(SIGNIN_COOKIE)
    if (
        not isinstance(presented, str)
        or not expected
        or not hmac.compare_digest(presented, expected)
    ):
        raise UiError(403, "the sign-in form expired; reload the page and try again")
    token = form.get("token")
    secret = token.strip() if isinstance(token, str) else ""
    if not secret:
        return _signin_page(
            request, message=None, error="Enter an API token.", status=400
        )
    try:
        principal = await principal_for_secret(services, secret)
    except HTTPException as exc:
        return _signin_page(
            request,
            message=None,
            error=f"Sign-in failed: {exc.detail}.",
            status=401,
        )
    first = next(
        (p for p, _, scope in NAV if scope is None or principal.has(scope)),
        "/ui/system",
    )
    response = RedirectResponse(first, status_code=303)
    await start_session(request, response, services, principal, hash_secret(secret))
    response.delete_cookie(SIGNIN_COOKIE, path=COOKIE_PATH)
    return response


@router.post("/signout")
async def signout(
    request: Request, session: SessionDep, services: ServicesDep
) -> Response:
    await check_csrf(request, session.csrf_token)
    await end_session(request, services)
    response = RedirectResponse("/ui/signin?reason=signed_out", status_code=303)
    clear_session_cookie(response)
    return response


@router.get("")
async def home(session: SessionDep) -> Response:
    first = next(
        (p for p, _, scope in NAV if scope is None or session.can(scope)),
        "/ui/system",
    )
    return RedirectResponse(first, status_code=303)
