"""``xdp47 rollouts ls|get|create|plan|start|abort|retry|rollback|pause|resume|
approve|promote|runs|devices|watch``.

start/abort/retry/rollback/pause/resume/approve/promote send a command: the API
answers 202 with the rollout as it is and the scheduler moves the status
afterwards (rollback: creates and starts the rollback rollout whose id the
answer names), so the CLI says "requested", not "done"; ``watch`` follows what
happens next.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

import typer
from rich.console import Console

from xdp47_cli.commands._common import (
    AllOption,
    LimitOption,
    fetch_list,
    list_into,
    resolved,
    selector_option,
    typed,
)
from xdp47_cli.commands.plan import show_plan
from xdp47_cli.commands.rollback import rollback_rollout
from xdp47_cli.commands.steering import (
    abort_rollout,
    approve_rollout,
    pause_rollout,
    promote_rollout,
    resume_rollout,
    retry_rollout,
    start_rollout,
)
from xdp47_cli.errors import CliError, guarded
from xdp47_cli.output import (
    Column,
    OutputFormat,
    OutputOption,
    console,
    emit_data,
    emit_list,
    emit_record,
    emit_value,
    get,
    is_terminal,
)
from xdp47_cli.resolve import (
    NameCache,
    artifact_ref,
    group_ref,
    policy_ref,
    rollout_ref,
)
from xdp47_cli.runtime import runtime
from xdp47_cli.watch import fetch_progress, progress_table, watch, wave_line
from xdp47_common.models import ProgressState, Rollout, RolloutDevice, RunProgress
from xdp47_common.rollout.status import RolloutHold, RolloutStatus

__all__ = ["app"]

app = typer.Typer(help="Rollouts: create, plan, start, follow.", no_args_is_help=True)

RolloutArg = Annotated[
    str, typer.Argument(metavar="ROLLOUT", help="Id, name, or a unique name prefix.")
]


def status_text(r: Mapping[str, Any]) -> str:
    """``running``, or ``running (paused)`` / ``running (awaiting_approval)`` /
    ``running (analysis_inconclusive)``."""
    hold = r.get("hold")
    return f"{r.get('status')} ({hold})" if hold else str(r.get("status"))


def columns(names: NameCache) -> list[Column]:
    """``rollouts ls``: the artifact's version and the policy's name, as the web
    UI shows them; ``-o wide`` adds their ids."""
    return [
        Column("name", get("name")),
        Column("id", get("id")),
        Column("status", status_text),
        Column("kind", get("kind"), only=OutputFormat.WIDE),
        Column("wave", lambda r: f"{r.get('current_wave') or '-'}/{r.get('waves')}"),
        Column("version", lambda r: names.artifact_version(r.get("artifact_id"))),
        Column("artifact id", get("artifact_id"), only=OutputFormat.WIDE),
        Column("policy", lambda r: names.policy_name(r.get("policy_id"))),
        Column("policy id", get("policy_id"), only=OutputFormat.WIDE),
        Column("selector", get("selector")),
        Column("channel", get("channel")),
        Column("created", get("created_at")),
        Column("reason", get("reason"), only=OutputFormat.WIDE),
    ]


RUN_COLUMNS = [
    Column("attempt", get("attempt")),
    Column("wave", get("wave")),
    Column("eligible", get("eligible")),
    Column("succeeded", get("succeeded")),
    Column("failed", get("failed")),
    Column("skipped", get("skipped")),
    Column("updating", get("updating")),
    Column("outcome", get("outcome")),
    Column("started", get("started_at")),
    Column("finished", get("finished_at")),
    Column("reason", get("reason")),
]


DEVICE_COLUMNS = [
    Column("wave", get("wave")),
    Column("device", get("device_id")),
    Column("state", get("state")),
    Column("reason", get("reason")),
    Column("device status", get("device_status")),
    Column("told", get("assigned_at")),
    Column("finished", get("finished_at")),
    # What the device ran before (a rollback's destination) and what it is sent.
    Column("from", get("from_version"), only=OutputFormat.WIDE),
    Column("to", get("version"), only=OutputFormat.WIDE),
    # Per-device retries: the device's try and when the next may start.
    Column("try", get("device_attempt"), only=OutputFormat.WIDE),
    Column("retry after", get("retry_after"), only=OutputFormat.WIDE),
]


@app.command("get")
@guarded
def get_rollout(
    ctx: typer.Context, ref: RolloutArg, fmt: OutputFormat = OutputOption
) -> None:
    """Show one rollout and its devices per wave and state.

    With `-o json`: the rollout's fields and `progress`, the read model of
    `GET /api/rollouts/ID/progress` (the numbers the web UI shows).
    """
    with runtime(ctx).client() as client:
        rollout_id = rollout_ref(client, ref)
        record = client.get(f"/api/rollouts/{rollout_id}")
        typed(Rollout, record)
        progress = fetch_progress(client, rollout_id)
    if fmt.machine:
        emit_data({**record, "progress": progress.model_dump(mode="json")}, fmt)
        return
    emit_record(record, fmt)
    if is_terminal():
        console().print(progress_table(progress))
    else:  # the lines `watch` prints in a pipe, whole
        for wave in progress.waves:
            emit_value(wave_line(wave))


@app.command("ls")
@guarded
def list_rollouts(
    ctx: typer.Context,
    status: Annotated[
        RolloutStatus | None, typer.Option(help="Only this status.")
    ] = None,
    hold: Annotated[
        RolloutHold | None,
        typer.Option(
            help="Only running rollouts held so (paused, awaiting_approval, "
            "analysis_inconclusive)."
        ),
    ] = None,
    fmt: OutputFormat = OutputOption,
    limit: LimitOption = 100,
    fetch_all: AllOption = False,
) -> None:
    """List rollouts with their artifact's version and their policy's name."""
    params = {
        "status": status.value if status else None,
        "hold": hold.value if hold else None,
    }
    with runtime(ctx).client() as client:
        items = fetch_list(
            client,
            "/api/rollouts",
            Rollout,
            limit=limit,
            fetch_all=fetch_all,
            params=params,
        )
        # Looked up while the client is open; -o json/yaml shows the API's objects.
        emit_list(items, columns(NameCache(client)), fmt)


def _percentages(raw: str) -> list[int]:
    try:
        values = [int(p) for p in raw.split(",") if p.strip()]
    except ValueError as exc:
        raise CliError(
            f"--percentages: expected integers like 10,30,60, got {raw!r}"
        ) from exc
    if not values:
        raise CliError("--percentages: give at least one percentage")
    return values


@app.command("create")
@guarded
def create_rollout(
    ctx: typer.Context,
    artifact: Annotated[
        str, typer.Option("--artifact", "-a", help="Artifact id or version.")
    ],
    waves: Annotated[int | None, typer.Option(help="Number of equal waves.")] = None,
    percentages: Annotated[
        str | None, typer.Option(help="Share per wave, e.g. 10,30,60 (sums to 100).")
    ] = None,
    channel: Annotated[
        str | None, typer.Option(help="Channel (API default stable).")
    ] = None,
    policy: Annotated[str | None, typer.Option(help="Policy id or name.")] = None,
    selector: Annotated[
        list[str] | None,
        typer.Option(
            "--selector",
            "-l",
            help="k=v, k!=v, 'k in (a,b)', 'k notin (a,b)', k, !k; repeat or "
            "comma-separate.",
        ),
    ] = None,
    group: Annotated[
        str | None,
        typer.Option(
            help="Device group id or name: target its members (and --selector)."
        ),
    ] = None,
    name: Annotated[str | None, typer.Option(help="Display name.")] = None,
    tenant: Annotated[str | None, typer.Option(help="Default: the context's.")] = None,
    fmt: OutputFormat = OutputOption,
) -> None:
    """Create a rollout (status draft); `start` it when the plan looks right."""
    rt = runtime(ctx)
    body: dict[str, Any] = {
        "tenant": rt.require_tenant(tenant),
        "selector": selector_option(selector or [], "--selector").to_json(),
    }
    optional: dict[str, Any] = {
        "waves": waves,
        "wave_percentages": _percentages(percentages) if percentages else None,
        "channel": channel,
        "name": name,
    }
    body |= {k: v for k, v in optional.items() if v is not None}
    with rt.client() as client:
        body["artifact_id"] = str(artifact_ref(client, artifact))
        if policy:
            body["policy_id"] = str(policy_ref(client, policy))
        if group:
            body["group_id"] = str(group_ref(client, group))
        created = client.post("/api/rollouts", body)
    typed(Rollout, created)
    emit_record(created, fmt)


@app.command("plan")
@guarded
def plan_rollout(
    ctx: typer.Context, ref: RolloutArg, fmt: OutputFormat = OutputOption
) -> None:
    """Show the devices per wave (a preview for a draft) and who is left out."""
    with runtime(ctx).client() as client:
        show_plan(client, rollout_ref(client, ref), fmt)


for _verb, _fn in (
    ("start", start_rollout),
    ("abort", abort_rollout),
    ("retry", retry_rollout),
    ("rollback", rollback_rollout),
    ("pause", pause_rollout),
    ("resume", resume_rollout),
    ("approve", approve_rollout),
    ("promote", promote_rollout),
):
    app.command(_verb)(_fn)


@app.command("runs")
@guarded
def list_runs(
    ctx: typer.Context,
    ref: RolloutArg,
    fmt: OutputFormat = OutputOption,
    limit: LimitOption = 100,
    fetch_all: AllOption = False,
) -> None:
    """The wave history of a rollout, by attempt and wave."""
    list_into(
        ctx,
        f"/api/rollouts/{resolved(ctx, ref)}/runs",
        RunProgress,
        RUN_COLUMNS,
        fmt,
        limit=limit,
        fetch_all=fetch_all,
    )


@app.command("devices")
@guarded
def list_devices(
    ctx: typer.Context,
    ref: RolloutArg,
    state: Annotated[
        ProgressState | None, typer.Option(help="Only devices in this state.")
    ] = None,
    wave: Annotated[int | None, typer.Option(min=1, help="Only this wave.")] = None,
    fmt: OutputFormat = OutputOption,
    limit: LimitOption = 100,
    fetch_all: AllOption = False,
) -> None:
    """The devices of a rollout with their state and reason, by wave."""
    list_into(
        ctx,
        f"/api/rollouts/{resolved(ctx, ref)}/devices",
        RolloutDevice,
        DEVICE_COLUMNS,
        fmt,
        limit=limit,
        fetch_all=fetch_all,
        params={"state": state.value if state else None, "wave": wave},
    )


@app.command("watch")
@guarded
def watch_rollout(
    ctx: typer.Context,
    ref: RolloutArg,
    timeout: Annotated[
        float | None,
        typer.Option(min=0, help="Give up after this many seconds (exit 6)."),
    ] = None,
    interval: Annotated[
        float, typer.Option(min=0.05, help="Seconds between polls.")
    ] = 1.0,
) -> None:
    """Follow a rollout live until it ends.

    Exit codes: 0 completed, 3 partial, 4 failed, 5 aborted, 6 timeout,
    7 completed but no device was updated, 1 error.
    """
    rt = runtime(ctx)
    with rt.client() as client:
        code = watch(
            client,
            rollout_ref(client, ref),
            timeout=timeout,
            interval=interval,
            clock=rt.clock,
            sleep=rt.sleep,
            out=console(),
            err=Console(stderr=True, highlight=False),
        )
    raise typer.Exit(int(code))
