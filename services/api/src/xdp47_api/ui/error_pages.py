"""The UI's error page for everything under ``/ui`` that is not a page: an unknown
path (404), a wrong method (405), a malformed id or query parameter (422, worded
by ``messages.human_message``) and a ``UiError`` raised by a page. Elsewhere
(``/api``, the health routes) the JSON answers of ``xdp47_common.web`` stay.

The page shows the menu when the browser has a valid session, so a mistyped
address is one click from where the operator was.
"""

from __future__ import annotations

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import PlainTextResponse, Response
from starlette.exceptions import HTTPException

from xdp47_api.ui.messages import human_message
from xdp47_api.ui.session import SignInRequired, UiError, UiSession, current_session
from xdp47_api.ui.templating import render
from xdp47_common.web import answer_error

__all__ = ["UI_PREFIX", "http_error", "ui_error", "validation_error"]

UI_PREFIX = "/ui"
STATIC_PREFIX = "/ui/static/"
REASONS = {
    404: "There is no page at this address.",
    405: "This address does not answer that kind of request.",
}


def _is_ui(request: Request) -> bool:
    path = request.url.path
    return path == UI_PREFIX or path.startswith(UI_PREFIX + "/")


async def _session(request: Request) -> UiSession | None:
    try:
        return await current_session(request, request.app.state.services)
    except SignInRequired:
        return None


async def error_page(
    request: Request,
    status: int,
    message: str,
    headers: dict[str, str] | None = None,
) -> Response:
    """The error page, with the menu when signed in (not after a 5xx: the
    database behind the session may be what failed)."""
    session = await _session(request) if status < 500 else None
    return render(
        request,
        "error.html",
        session,
        status=status,
        headers=headers,
        code=status,
        message=message,
    )


async def ui_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, UiError)
    return await error_page(request, exc.status, exc.message)


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if not _is_ui(request):
        return answer_error(exc)
    if request.url.path.startswith(STATIC_PREFIX):
        return PlainTextResponse("not found", status_code=exc.status_code)
    message = REASONS.get(exc.status_code, str(exc.detail))
    headers = dict(exc.headers) if exc.headers else None
    return await error_page(request, exc.status_code, message, headers)


async def validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    if not _is_ui(request):
        return answer_error(exc)
    # loc is ("path" | "query", name, ...): the message names the parameter.
    messages = [
        human_message(err, str(err["loc"][1]) if len(err["loc"]) > 1 else None)
        for err in exc.errors()
    ]
    return await error_page(request, 422, "; ".join(messages) or "invalid request")
