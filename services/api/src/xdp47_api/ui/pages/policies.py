"""``/ui/policies``: create gate policies and list them; saved through the REST
route function with the API's ``PolicyCreate`` validation."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError

from xdp47_api.state import ServicesDep
from xdp47_api.ui.forms import FieldErrors, errors_from_validation, field
from xdp47_api.ui.pages._common import call_api, page_scope
from xdp47_api.ui.session import SessionDep, UiError, UiSession, WriteSessionDep
from xdp47_api.ui.templating import render
from xdp47_api.usecases import policies
from xdp47_common.models import PolicyCreate, Scope

__all__ = ["router"]

router = APIRouter(prefix="/ui/policies", include_in_schema=False)

BOOLS = ("require_ok", "skip_offline", "abort_on_zero_eligible")
NUMBERS = (
    "grace_seconds",
    "min_success_ratio",
    "max_failures_per_wave",
    "wave_deadline_seconds",
    "max_device_retries",
    "retry_backoff_seconds",
    "retry_backoff_max_seconds",
)
LIST_LIMIT = 200
# The telemetry analysis: one check per line, and the devices each side needs.
ANALYSIS = ("analysis_checks", "analysis_min_devices")


async def _page(
    request: Request,
    session: UiSession,
    services: ServicesDep,
    *,
    values: dict[str, str] | None = None,
    errors: FieldErrors | None = None,
    created: UUID | None = None,
    status: int = 200,
) -> Response:
    page = await policies.list_page(
        services, session.tenant, limit=LIST_LIMIT, cursor=None
    )
    return render(
        request,
        "policies.html",
        session,
        status=status,
        policies=page.items,
        more=page.next_cursor is not None,
        values=values or {},
        errors=errors or {},
        created=created,
    )


@router.get("")
async def policies_page(
    request: Request,
    session: SessionDep,
    services: ServicesDep,
    created: Annotated[UUID | None, Query()] = None,
) -> Response:
    page_scope(session, Scope.POLICIES_READ)
    return await _page(request, session, services, created=created)


@router.post("")
async def create(
    request: Request, session: WriteSessionDep, services: ServicesDep
) -> Response:
    session.require(Scope.POLICIES_WRITE)
    form = await request.form()
    names = (
        "name",
        *BOOLS,
        *NUMBERS,
        "approval_before_waves",
        "on_failure",
        *ANALYSIS,
        "maintenance_windows",
        "late_joiners",
    )
    values = {name: field(form, name) for name in names}
    fields: dict[str, Any] = {"tenant": session.tenant, "name": values["name"]}
    errors: FieldErrors = {}
    for name in BOOLS:
        if values[name] in ("true", "false"):
            fields[name] = values[name] == "true"
        elif values[name]:
            errors[name] = "choose yes, no or the scheduler default"
    for name in (*NUMBERS, "on_failure", "late_joiners"):
        if values[name]:
            fields[name] = values[name]  # pydantic parses and range-checks
    if values["approval_before_waves"]:
        # "2, 4": the waves, parsed and range-checked by pydantic.
        fields["approval_before_waves"] = [
            w.strip() for w in values["approval_before_waves"].split(",") if w.strip()
        ]
    # One window per line, in each device's own zone.
    windows = [w.strip() for w in values["maintenance_windows"].splitlines()]
    if any(windows):
        fields["maintenance_windows"] = [w for w in windows if w]
    checks = [c.strip() for c in values["analysis_checks"].splitlines() if c.strip()]
    if checks:
        fields["analysis"] = {"checks": checks}
        if values["analysis_min_devices"]:
            fields["analysis"]["min_devices"] = values["analysis_min_devices"]
    elif values["analysis_min_devices"]:
        errors["analysis_checks"] = "Add at least one check for the minimum devices"
    try:
        body = PolicyCreate.model_validate(fields)
    except ValidationError as exc:
        errors = {
            **errors_from_validation(exc, {"analysis": "analysis_checks"}),
            **errors,
        }
    if errors:
        return await _page(
            request, session, services, values=values, errors=errors, status=422
        )
    try:
        policy = await call_api(policies.create(services, session.principal, body))
    except UiError as exc:
        if exc.status != 409:
            raise
        return await _page(
            request,
            session,
            services,
            values=values,
            errors={"name": f"a policy named '{body.name}' already exists"},
            status=409,
        )
    return RedirectResponse(f"/ui/policies?created={policy.id}", status_code=303)
