"""The commands ``xdp47 rollouts start|abort|retry|pause|resume|approve|promote``
send: each posts ``/api/rollouts/{id}:<verb>`` and says it was requested (the
scheduler moves the status afterwards)."""

from __future__ import annotations

from typing import Annotated

import typer

from xdp47_cli.commands._common import typed
from xdp47_cli.errors import guarded
from xdp47_cli.output import OutputFormat, OutputOption, emit_data, emit_value
from xdp47_cli.resolve import rollout_ref
from xdp47_cli.runtime import runtime
from xdp47_common.models import Rollout

__all__ = [
    "abort_rollout",
    "approve_rollout",
    "pause_rollout",
    "promote_rollout",
    "resume_rollout",
    "retry_rollout",
    "start_rollout",
]

RolloutArg = Annotated[
    str, typer.Argument(metavar="ROLLOUT", help="Id, name, or a unique name prefix.")
]


def _command(ctx: typer.Context, verb: str, ref: str, fmt: OutputFormat) -> None:
    with runtime(ctx).client() as client:
        answer = client.post(f"/api/rollouts/{rollout_ref(client, ref)}:{verb}")
    rollout = typed(Rollout, answer)
    if fmt.machine:
        emit_data(answer, fmt)
        return
    status = rollout.status.value + (f" ({rollout.hold.value})" if rollout.hold else "")
    emit_value(
        f"{verb} requested for rollout {rollout.id} (status {status}); "
        f"follow it with `xdp47 rollouts watch {rollout.id}`"
    )


@guarded
def start_rollout(
    ctx: typer.Context, ref: RolloutArg, fmt: OutputFormat = OutputOption
) -> None:
    """Start a draft rollout."""
    _command(ctx, "start", ref, fmt)


@guarded
def abort_rollout(
    ctx: typer.Context, ref: RolloutArg, fmt: OutputFormat = OutputOption
) -> None:
    """Abort: devices not yet updated keep their version."""
    _command(ctx, "abort", ref, fmt)


@guarded
def retry_rollout(
    ctx: typer.Context, ref: RolloutArg, fmt: OutputFormat = OutputOption
) -> None:
    """Retry the failed and skipped devices of a failed or partial rollout."""
    _command(ctx, "retry", ref, fmt)


@guarded
def pause_rollout(
    ctx: typer.Context, ref: RolloutArg, fmt: OutputFormat = OutputOption
) -> None:
    """Pause a running rollout: no new wave starts and no gate judges.

    Devices already told to update keep going; the current wave's grace and
    deadline stop until `resume`.
    """
    _command(ctx, "pause", ref, fmt)


@guarded
def resume_rollout(
    ctx: typer.Context, ref: RolloutArg, fmt: OutputFormat = OutputOption
) -> None:
    """Resume a paused rollout (its wave goes on with the time it had left), or one
    held by an inconclusive analysis (its wave is judged again)."""
    _command(ctx, "resume", ref, fmt)


@guarded
def approve_rollout(
    ctx: typer.Context, ref: RolloutArg, fmt: OutputFormat = OutputOption
) -> None:
    """Approve the wave a rollout awaits (needs the rollouts:approve scope).

    Under the tenant's four-eyes setting, the token that started the rollout
    cannot approve it.
    """
    _command(ctx, "approve", ref, fmt)


@guarded
def promote_rollout(
    ctx: typer.Context, ref: RolloutArg, fmt: OutputFormat = OutputOption
) -> None:
    """Judge the current wave now, skipping the rest of its grace period."""
    _command(ctx, "promote", ref, fmt)
