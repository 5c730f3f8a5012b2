"""``xdp47 audit``: the tenant's audit trail (``GET /api/audit``, scope
``audit:read``), newest first, with the API's filters; read only (no command
changes or deletes a record)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any

import typer

from xdp47_cli.commands._common import AllOption, LimitOption, list_into
from xdp47_cli.errors import CliError, guarded
from xdp47_cli.output import Column, OutputFormat, OutputOption, get
from xdp47_cli.resolve import rollout_ref
from xdp47_cli.runtime import runtime
from xdp47_common.models.audit import AuditRecord

__all__ = ["COLUMNS", "audit"]


def _who(row: Mapping[str, Any]) -> str:
    """The token's name (its id when unnamed); a scheduler decision taken on an
    operator's command says for whom."""
    who = row.get("actor_name") or row.get("actor") or "-"
    behalf = row.get("on_behalf_of_name") or row.get("on_behalf_of")
    return f"{who} (for {behalf})" if behalf else str(who)


def _status(row: Mapping[str, Any]) -> str:
    before, after = row.get("status_before"), row.get("status_after")
    if before is None and after is None:
        return "-"
    return f"{before or '-'} -> {after or '-'}"


COLUMNS = [
    Column("seq", get("seq"), only=OutputFormat.WIDE),
    Column("at", get("at")),
    Column("actor", _who),
    Column("actor id", get("actor"), only=OutputFormat.WIDE),
    Column("action", get("action")),
    Column("subject", lambda r: f"{r.get('subject_type')}/{r.get('subject_id')}"),
    Column("status", _status),
    Column("outcome", get("outcome")),
    Column("request id", get("request_id"), only=OutputFormat.WIDE),
    Column("detail", get("detail"), only=OutputFormat.WIDE),
]


def _time(value: str | None, option: str) -> str | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise CliError(
            f"{option}: expected an ISO 8601 time like 2026-12-03T10:00:00Z, "
            f"got {value!r}"
        ) from None
    if parsed.tzinfo is None:
        raise CliError(f"{option}: give a time zone (Z or +01:00), got {value!r}")
    return parsed.isoformat()


@guarded
def audit(
    ctx: typer.Context,
    rollout: Annotated[
        str | None,
        typer.Option(help="Only this rollout (id, name or name prefix)."),
    ] = None,
    actor: Annotated[
        str | None,
        typer.Option(help="token:<id>, a token's name, or scheduler."),
    ] = None,
    action: Annotated[
        str | None,
        typer.Option(help="An action (rollout.start) or a prefix (rollout.*)."),
    ] = None,
    since: Annotated[
        str | None, typer.Option(help="At or after this ISO 8601 time.")
    ] = None,
    until: Annotated[
        str | None, typer.Option(help="Before this ISO 8601 time.")
    ] = None,
    oldest_first: Annotated[
        bool, typer.Option("--oldest-first", help="Oldest first (default: newest).")
    ] = False,
    fmt: OutputFormat = OutputOption,
    limit: LimitOption = 100,
    fetch_all: AllOption = False,
) -> None:
    """The audit trail: who did what, when, with the status before and after."""
    rollout_id = None
    if rollout is not None:
        with runtime(ctx).client() as client:
            rollout_id = str(rollout_ref(client, rollout))
    params = {
        "rollout": rollout_id,
        "actor": actor,
        "action": action,
        "since": _time(since, "--since"),
        "until": _time(until, "--until"),
        "order": "asc" if oldest_first else None,
    }
    list_into(
        ctx,
        "/api/audit",
        AuditRecord,
        COLUMNS,
        fmt,
        limit=limit,
        fetch_all=fetch_all,
        params=params,
    )
