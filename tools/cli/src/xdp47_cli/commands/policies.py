"""``xdp47 policies ls|get|create``: the gate settings of rollouts. An option left
out stays null, so the scheduler's default applies. A policy's name is unique in
its tenant (the API answers 409 to a second one), so ``get`` takes the name as
well as the id."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from xdp47_cli.commands._common import (
    add_get_command,
    add_ls_command,
    typed,
)
from xdp47_cli.errors import CliError, guarded
from xdp47_cli.output import Column, OutputFormat, OutputOption, emit_record, get
from xdp47_cli.resolve import policy_ref
from xdp47_cli.runtime import runtime
from xdp47_common.models import Policy
from xdp47_common.rollout.policy import LateJoiners, OnFailure

__all__ = ["app"]

app = typer.Typer(help="Rollout policies (gates).", no_args_is_help=True)

COLUMNS = [
    Column("name", get("name")),
    Column("id", get("id")),
    Column("require ok", get("require_ok")),
    Column("skip offline", get("skip_offline")),
    Column("grace s", get("grace_seconds")),
    Column("min ratio", get("min_success_ratio")),
    Column("max fail", get("max_failures_per_wave")),
    Column("abort on 0", get("abort_on_zero_eligible")),
    Column("deadline s", get("wave_deadline_seconds")),
    Column("retries", get("max_device_retries")),
    Column("retry s", get("retry_backoff_seconds")),
    Column("retry max s", get("retry_backoff_max_seconds")),
    Column("approval before", get("approval_before_waves")),
    Column("on failure", get("on_failure")),
]

add_ls_command(app, "/api/policies", Policy, COLUMNS, "List policies.")
add_get_command(app, "/api/policies", Policy, "POLICY", policy_ref)


@app.command("create")
@guarded
def create_policy(
    ctx: typer.Context,
    name: Annotated[
        str, typer.Argument(metavar="NAME", help="Policy name, unique in the tenant.")
    ],
    require_ok: Annotated[
        bool | None,
        typer.Option(
            "--require-ok/--no-require-ok", help="Count only healthy devices."
        ),
    ] = None,
    skip_offline: Annotated[
        bool | None,
        typer.Option(
            "--skip-offline/--no-skip-offline",
            help="Skip devices offline at wave start.",
        ),
    ] = None,
    grace_seconds: Annotated[
        int | None, typer.Option(help="Wait this long after a wave starts.")
    ] = None,
    min_success_ratio: Annotated[
        float | None, typer.Option(help="Share of eligible devices that must succeed.")
    ] = None,
    max_failures_per_wave: Annotated[
        int | None, typer.Option(help="More failures than this fail the rollout.")
    ] = None,
    abort_on_zero_eligible: Annotated[
        bool | None,
        typer.Option(
            "--abort-on-zero-eligible/--no-abort-on-zero-eligible",
            help="Fail when a wave has no eligible device.",
        ),
    ] = None,
    wave_deadline_seconds: Annotated[
        int | None, typer.Option(help="A device not done by then counts as failed.")
    ] = None,
    max_device_retries: Annotated[
        int | None,
        typer.Option(
            help="More tries a device gets after a failed download or apply "
            "(0-10; SHA256/signature mismatches and refusals are never retried)."
        ),
    ] = None,
    retry_backoff_seconds: Annotated[
        int | None,
        typer.Option(help="Wait before a device's first retry; doubles per retry."),
    ] = None,
    retry_backoff_max_seconds: Annotated[
        int | None, typer.Option(help="The longest wait between a device's tries.")
    ] = None,
    approval_before_wave: Annotated[
        list[int] | None,
        typer.Option(
            "--approval-before-wave",
            help="Wave (2 and up) that starts only once approved; repeat for more.",
        ),
    ] = None,
    check: Annotated[
        list[str] | None,
        typer.Option(
            "--check",
            help="A telemetry analysis check, e.g. 'error_rate: updated - "
            "baseline <= 0.02' (repeat for several).",
        ),
    ] = None,
    min_devices: Annotated[
        int | None,
        typer.Option(help="Devices each side of an analysis check needs (3)."),
    ] = None,
    window: Annotated[
        list[str] | None,
        typer.Option(
            "--window",
            help="A maintenance window in each device's own zone, e.g. "
            "'Mon-Fri 01:00-05:00' (repeat for several).",
        ),
    ] = None,
    late_joiners: Annotated[
        LateJoiners | None,
        typer.Option(
            help="A device that matches after its wave was written: "
            "current_wave, last_wave (default) or ignore."
        ),
    ] = None,
    on_failure: Annotated[
        OnFailure | None,
        typer.Option(
            help="When the rollout fails: stop (default) or rollback (start a "
            "rollback of it by itself)."
        ),
    ] = None,
    tenant: Annotated[str | None, typer.Option(help="Default: the context's.")] = None,
    fmt: OutputFormat = OutputOption,
) -> None:
    """Create a policy; options left out take the scheduler's defaults."""
    rt = runtime(ctx)
    fields: dict[str, Any] = {
        "require_ok": require_ok,
        "skip_offline": skip_offline,
        "grace_seconds": grace_seconds,
        "min_success_ratio": min_success_ratio,
        "max_failures_per_wave": max_failures_per_wave,
        "abort_on_zero_eligible": abort_on_zero_eligible,
        "wave_deadline_seconds": wave_deadline_seconds,
        "max_device_retries": max_device_retries,
        "retry_backoff_seconds": retry_backoff_seconds,
        "retry_backoff_max_seconds": retry_backoff_max_seconds,
        "approval_before_waves": approval_before_wave or None,
        "on_failure": on_failure.value if on_failure else None,
        "maintenance_windows": window or None,
        "late_joiners": late_joiners.value if late_joiners else None,
    }
    if check:
        analysis: dict[str, Any] = {"checks": check}
        if min_devices is not None:
            analysis["min_devices"] = min_devices
        fields["analysis"] = analysis
    elif min_devices is not None:
        raise CliError("--min-devices needs at least one --check")
    body = {"tenant": rt.require_tenant(tenant), "name": name} | {
        k: v for k, v in fields.items() if v is not None
    }
    with rt.client() as client:
        created = client.post("/api/policies", body)
    typed(Policy, created)
    emit_record(created, fmt)
