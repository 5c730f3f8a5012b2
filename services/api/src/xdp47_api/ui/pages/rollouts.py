"""``/ui/rollouts``: create drafts, list them with their status, and the start /
retry / abort actions. Actions call the REST route functions, so they check the
status and publish the command exactly as ``POST /api/rollouts/{id}:<verb>``
(both call ``usecases.rollout_commands``)."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError

from xdp47_api.state import ServicesDep
from xdp47_api.ui.actors import named_rollouts
from xdp47_api.ui.forms import (
    FieldErrors,
    errors_from_validation,
    field,
    optional_int,
    parse_percentages,
)
from xdp47_api.ui.pages._common import call_api, page_scope
from xdp47_api.ui.session import SessionDep, UiError, UiSession, WriteSessionDep
from xdp47_api.ui.templating import render
from xdp47_api.usecases import artifacts as artifact_cases
from xdp47_api.usecases import policies as policy_cases
from xdp47_api.usecases import rollout_commands, rollouts
from xdp47_common.models import RolloutCreate, Scope
from xdp47_common.rollout.status import RolloutStatus
from xdp47_common.selectors import parse_selector

__all__ = ["router"]

router = APIRouter(prefix="/ui/rollouts", include_in_schema=False)

FIELDS = (
    "name",
    "artifact_id",
    "channel",
    "waves",
    "percentages",
    "policy_id",
    "group_id",
)
LIST_LIMIT = 200
GROUPS_LIMIT = 500


async def _page(
    request: Request,
    session: UiSession,
    services: ServicesDep,
    *,
    status_filter: RolloutStatus | None = None,
    values: dict[str, str] | None = None,
    errors: FieldErrors | None = None,
    status: int = 200,
) -> Response:
    listing = await rollouts.list_page(
        services, session.tenant, status=status_filter, limit=LIST_LIMIT, cursor=None
    )
    artifacts: list[Any] = []
    policies: list[Any] = []
    if session.can(Scope.ARTIFACTS_READ):
        artifacts = (
            await artifact_cases.list_page(
                services, session.tenant, limit=1000, cursor=None
            )
        ).items
    if session.can(Scope.POLICIES_READ):
        policies = (
            await policy_cases.list_page(
                services, session.tenant, limit=1000, cursor=None
            )
        ).items
    groups: list[Any] = []
    if session.can(Scope.DEVICES_READ):
        # The groups a rollout may target, each with its live member count.
        groups = (
            await services.repos.groups.list(
                session.tenant, limit=GROUPS_LIMIT, cursor=None
            )
        ).items
    versions = {a.id: a.version or str(a.id)[:8] for a in artifacts}
    listed, _ = await named_rollouts(services, session.tenant, listing.items)
    return render(
        request,
        "rollouts.html",
        session,
        status=status,
        rollouts=list(reversed(listed)),
        more=listing.next_cursor is not None,
        artifacts=list(reversed(artifacts)),
        versions=versions,
        policies=policies,
        groups=groups,
        group_names={g.id: g.name for g in groups},
        statuses=[s.value for s in RolloutStatus],
        status_filter=status_filter.value if status_filter else "",
        values=values or {"channel": "stable", "waves": "3"},
        errors=errors or {},
        command_from=rollout_commands.accepted_statuses(),
    )


@router.get("")
async def rollouts_page(
    request: Request,
    session: SessionDep,
    services: ServicesDep,
    status: Annotated[RolloutStatus | None, Query()] = None,
) -> Response:
    page_scope(session, Scope.ROLLOUTS_READ)
    return await _page(request, session, services, status_filter=status)


def _fields(session: UiSession, values: dict[str, str]) -> tuple[Any, FieldErrors]:
    errors: FieldErrors = {}
    fields: dict[str, Any] = {"tenant": session.tenant}
    if values["name"]:
        fields["name"] = values["name"]
    if values["artifact_id"]:
        fields["artifact_id"] = values["artifact_id"]
    else:
        errors["artifact_id"] = "Choose an artifact"
    if values["policy_id"]:
        fields["policy_id"] = values["policy_id"]
    if values["group_id"]:
        fields["group_id"] = values["group_id"]
    fields["channel"] = values["channel"] or "stable"
    # Percentages, when given, are the plan: their count is the number of waves
    # and the Waves field is not read (it cannot contradict them). Without
    # percentages the devices are split evenly into Waves waves.
    try:
        percentages = parse_percentages(values["percentages"])
    except ValueError as exc:
        errors["percentages"] = str(exc)
    else:
        if percentages is not None:
            fields["wave_percentages"] = percentages
            values["waves"] = str(len(percentages))  # shown again on a 422
        else:
            waves = optional_int(values["waves"], "waves", errors)
            if waves is not None:
                fields["waves"] = waves
    try:
        fields["selector"] = parse_selector(values["selector"]).to_json()
    except ValueError as exc:
        errors["selector"] = str(exc)
    return fields, errors


@router.post("")
async def create(
    request: Request, session: WriteSessionDep, services: ServicesDep
) -> Response:
    session.require(Scope.ROLLOUTS_WRITE)
    form = await request.form()
    values = {name: field(form, name) for name in (*FIELDS, "selector")}
    fields, errors = _fields(session, values)
    body = None
    try:
        body = RolloutCreate.model_validate(fields)
    except ValidationError as exc:
        aliases = {"wave_percentages": "percentages"}
        errors = {**errors_from_validation(exc, aliases), **errors}
    if errors or body is None:
        return await _page(
            request, session, services, values=values, errors=errors, status=422
        )
    try:
        rollout = await call_api(rollouts.create(services, session.principal, body))
    except UiError as exc:
        if exc.status != 422:
            raise
        # "body.artifact_id: artifact '…' not found" → next to its field
        name, _, message = exc.message.removeprefix("body.").partition(": ")
        return await _page(
            request,
            session,
            services,
            values=values,
            errors={name if message else "form": message or exc.message},
            status=422,
        )
    return RedirectResponse(f"/ui/rollouts/{rollout.id}", status_code=303)


@router.post("/{rollout_id}/{verb}")
async def action(
    rollout_id: UUID, verb: str, session: WriteSessionDep, services: ServicesDep
) -> Response:
    if verb not in rollout_commands.COMMANDS:
        raise UiError(
            404,
            f"no rollout action {verb!r}; use " + ", ".join(rollout_commands.COMMANDS),
        )
    session.require(rollout_commands.COMMAND_SCOPE[verb])
    if verb == "start":
        await call_api(rollout_commands.start(services, session.principal, rollout_id))
    else:
        await call_api(
            rollout_commands.send(services, session.principal, verb, rollout_id)
        )
    return RedirectResponse(f"/ui/rollouts/{rollout_id}?sent={verb}", status_code=303)
