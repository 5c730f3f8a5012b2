"""Jinja2 rendering for the web UI: one autoescaping environment over
``xdp47_api/templates``, the common page context (session, CSRF token, navigation)
and the security headers every UI answer carries.

The Content-Security-Policy allows only this origin (scripts, styles, connections,
form targets), which is also what keeps the pages from reaching any other host.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from xdp47_api.ui.session import CSRF_FIELD, CSRF_HEADER, UiSession
from xdp47_common.models import Scope
from xdp47_common.selectors import Selector

__all__ = ["NAV", "SECURITY_HEADERS", "env", "render", "render_fragment"]

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; "
        "img-src 'self' data:; connect-src 'self'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    # Pages show tenant data and, once, new token secrets: never cache them.
    "Cache-Control": "no-store",
}

# (path, label, scope needed to see the page); a page the token cannot read is
# not offered.
NAV: tuple[tuple[str, str, Scope | None], ...] = (
    ("/ui/rollouts", "Rollouts", Scope.ROLLOUTS_READ),
    ("/ui/devices", "Devices", Scope.DEVICES_READ),
    ("/ui/groups", "Groups", Scope.DEVICES_READ),
    ("/ui/artifacts", "Artifacts", Scope.ARTIFACTS_READ),
    ("/ui/policies", "Policies", Scope.POLICIES_READ),
    ("/ui/tenants", "Tenants & tokens", Scope.TENANTS_READ),
    ("/ui/audit", "Audit", Scope.AUDIT_READ),
    ("/ui/system", "System", None),
)


def _when(value: datetime | None) -> str:
    if value is None:
        return "—"
    return value.strftime("%Y-%m-%d %H:%M:%S UTC")


def selector_text(value: Any) -> str:
    """A stored selector (either JSON form) as the text people type."""
    if not value:
        return ""
    return Selector.from_json(value).render()


def _short(value: object) -> str:
    return str(value)[:8]


env = Environment(
    loader=FileSystemLoader(TEMPLATES),
    autoescape=select_autoescape(["html"]),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
env.filters["when"] = _when
env.filters["short"] = _short
env.filters["selector_text"] = selector_text
env.globals.update(CSRF_FIELD=CSRF_FIELD, CSRF_HEADER=CSRF_HEADER, Scope=Scope)


def _context(
    request: Request, session: UiSession | None, ctx: dict[str, Any]
) -> dict[str, Any]:
    nav = [
        (path, label)
        for path, label, scope in NAV
        if session is not None and (scope is None or session.can(scope))
    ]
    return {
        "request": request,
        "session": session,
        "nav": nav,
        "path": request.url.path,
        **ctx,
    }


def render(
    request: Request,
    name: str,
    session: UiSession | None,
    status: int = 200,
    headers: dict[str, str] | None = None,
    **ctx: Any,
) -> HTMLResponse:
    """Render a whole page."""
    html = env.get_template(name).render(_context(request, session, ctx))
    return HTMLResponse(
        html, status_code=status, headers={**SECURITY_HEADERS, **(headers or {})}
    )


def render_fragment(
    request: Request, name: str, session: UiSession | None, **ctx: Any
) -> str:
    """Render a fragment (htmx swap or SSE payload) to a string."""
    return env.get_template(name).render(_context(request, session, ctx))
