"""``xdp47 devices ls|get``: the fleet, with the API's filters; one device with
its latest heartbeats and its rollout history (each failure with its code and
the sentence that explains it)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

import typer

from xdp47_cli.commands._common import (
    AllOption,
    LimitOption,
    list_into,
    selector_option,
    typed,
)
from xdp47_cli.commands._targeting import count_matching
from xdp47_cli.errors import guarded
from xdp47_cli.output import (
    Column,
    OutputFormat,
    OutputOption,
    console,
    emit_data,
    emit_list,
    emit_record,
    get,
)
from xdp47_cli.runtime import runtime
from xdp47_common.models import (
    Device,
    DeviceDetail,
    DeviceSort,
    DeviceStatus,
    describe_reason,
)
from xdp47_common.models.group import DeviceCount

__all__ = ["app"]

app = typer.Typer(help="Devices of your tenant.", no_args_is_help=True)

COLUMNS = [
    Column("id", get("id")),
    Column("status", get("status")),
    Column("health", get("health")),
    Column("version", get("current_version")),
    Column("desired", get("desired_version")),
    Column("channel", get("channel")),
    Column("labels", get("labels")),
    Column("properties", get("properties")),
    Column("last seen", get("last_seen")),
]
BUCKET_COLUMNS = [
    Column("value", get("value")),
    Column("devices", get("count")),
]


def _reason(row: Mapping[str, Any]) -> str | None:
    """``code: sentence (message)``; the sentence from the API, or this
    version's own for an API that predates it."""
    code = row.get("reason")
    if not code:
        return None
    sentence = row.get("reason_text") or describe_reason(code)
    detail = row.get("reason_detail")
    return f"{code}: {sentence}" + (f" ({detail})" if detail else "")


def _tries(row: Mapping[str, Any]) -> str | None:
    """The device's failed tries at a target (per-device retries), oldest
    first, ``1 download_failed; 2 download_failed``, and the scheduled next try
    (``next 3 at …``); None when the first try is all there was."""
    parts = [
        f"{a.get('attempt')} {a.get('code') or 'failed'}"
        for a in row.get("attempts") or []
    ]
    if row.get("retry_after"):
        parts.append(f"next {row.get('device_attempt')} at {row['retry_after']}")
    return "; ".join(parts) or None


HISTORY_COLUMNS = [
    Column("rollout", lambda h: h.get("rollout_name") or h.get("rollout_id")),
    Column("version", get("version")),
    Column("attempt", get("attempt")),
    Column("wave", get("wave")),
    Column("state", get("state")),
    Column("reason", _reason),
    Column("tries", _tries),
    Column("assigned", get("assigned_at")),
    Column("finished", get("finished_at")),
]
HEARTBEAT_COLUMNS = [
    Column("seq", get("seq")),
    Column("received", get("at")),
    Column("health", get("health")),
    Column("metrics", get("metrics")),
]
_SECTIONS = ("recent_heartbeats", "rollout_history", "last_apply_text")


@app.command("get")
@guarded
def get_device(
    ctx: typer.Context,
    device_id: Annotated[str, typer.Argument(metavar="DEVICE_ID")],
    fmt: OutputFormat = OutputOption,
) -> None:
    """Show one device: its state, last apply, rollout history and latest
    heartbeats."""
    with runtime(ctx).client() as client:
        record: dict[str, Any] = client.get(f"/api/devices/{device_id}")
    typed(DeviceDetail, record)
    if fmt.machine:
        emit_data(record, fmt)
        return
    facts = {k: v for k, v in record.items() if k not in _SECTIONS}
    last = facts.pop("last_apply", None) or {}
    if last:
        code = last.get("code")
        text = record.get("last_apply_text") or describe_reason(code)
        facts["last_apply"] = " ".join(
            str(part)
            for part in (
                last.get("result"),
                last.get("artifact_id"),
                f"{code}: {text}" if code else None,
                f"({last['reason']})" if last.get("reason") else None,
            )
            if part
        )
    emit_record(facts, fmt)
    out = console()
    out.print("\nROLLOUT HISTORY", style="bold")
    emit_list(record.get("rollout_history", []), HISTORY_COLUMNS, fmt)
    out.print("\nLATEST HEARTBEATS", style="bold")
    emit_list(record.get("recent_heartbeats", []), HEARTBEAT_COLUMNS, fmt)


@app.command("ls")
@guarded
def list_devices(
    ctx: typer.Context,
    label: Annotated[
        list[str] | None,
        typer.Option(
            "--label",
            "-l",
            help="A selector: k=v, k!=v, 'k in (a,b)', 'k notin (a,b)', k, !k; "
            "comma-separate or repeat, all must hold.",
        ),
    ] = None,
    sort: Annotated[
        DeviceSort, typer.Option(help="id, last_seen (newest first), version, status.")
    ] = DeviceSort.ID,
    status: Annotated[DeviceStatus | None, typer.Option(help="Device status.")] = None,
    version: Annotated[str | None, typer.Option(help="Current version.")] = None,
    channel: Annotated[str | None, typer.Option(help="Channel.")] = None,
    q: Annotated[str | None, typer.Option("-q", "--query", help="Id prefix.")] = None,
    fmt: OutputFormat = OutputOption,
    limit: LimitOption = 100,
    fetch_all: AllOption = False,
) -> None:
    """List devices, filtered by a selector, status, version, channel or id prefix;
    the table ends with how many devices the selector matches."""
    selector = selector_option(label or [], "--label").render()
    params = {
        "label": selector or None,
        "sort": sort.value,
        "status": status.value if status else None,
        "version": version,
        "channel": channel,
        "q": q,
    }
    items = list_into(
        ctx,
        "/api/devices",
        Device,
        COLUMNS,
        fmt,
        limit=limit,
        fetch_all=fetch_all,
        params=params,
    )
    if fmt is OutputFormat.JSON:
        return
    with runtime(ctx).client() as client:
        total = typed(DeviceCount, count_matching(client, selector)).count
    what = f"match {selector}" if selector else "in the tenant"
    shown = f"{len(items)} shown; " if len(items) < total else ""
    console().print(f"{shown}{total} devices {what}")


@app.command("count")
@guarded
def count_devices(
    ctx: typer.Context,
    label: Annotated[
        list[str] | None,
        typer.Option("--label", "-l", help="A selector (as for ls); repeat."),
    ] = None,
    by: Annotated[
        str | None,
        typer.Option(help="Split by version, status, channel or label:<key>."),
    ] = None,
    group: Annotated[
        str | None, typer.Option(help="Only members of this group (id).")
    ] = None,
    fmt: OutputFormat = OutputOption,
) -> None:
    """Count the devices a selector matches now, optionally per version, status,
    channel or label value."""
    selector = selector_option(label or [], "--label").render()
    with runtime(ctx).client() as client:
        answer = count_matching(client, selector, by=by, group=group)
    typed(DeviceCount, answer)
    if fmt.machine:
        emit_data(answer, fmt)
        return
    console().print(f"{answer['count']} devices match {answer['selector'] or 'all'}")
    if by:
        emit_list(answer["buckets"], BUCKET_COLUMNS, fmt)
