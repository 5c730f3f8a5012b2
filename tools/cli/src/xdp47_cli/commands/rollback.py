"""``xdp47 rollouts rollback ROLLOUT [--policy POLICY]``: ask for the rollback of
a rollout; the answer names the rollback rollout the scheduler creates."""

from __future__ import annotations

from typing import Annotated

import typer

from xdp47_cli.commands._common import typed
from xdp47_cli.errors import guarded
from xdp47_cli.output import OutputFormat, OutputOption, emit_data, emit_value
from xdp47_cli.resolve import policy_ref, rollout_ref
from xdp47_cli.runtime import runtime
from xdp47_common.models import RollbackAnswer

__all__ = ["rollback_rollout"]

RolloutArg = Annotated[
    str, typer.Argument(metavar="ROLLOUT", help="Id, name, or a unique name prefix.")
]


@guarded
def rollback_rollout(
    ctx: typer.Context,
    ref: RolloutArg,
    policy: Annotated[
        str | None,
        typer.Option(
            help="Policy id or name of the rollback (default: the rollout's)."
        ),
    ] = None,
    fmt: OutputFormat = OutputOption,
) -> None:
    """Send every device that applied the rollout's artifact back to what it ran
    before, in a new rollout (kind rollback); a running rollout is aborted first."""
    with runtime(ctx).client() as client:
        rid = rollout_ref(client, ref)
        body = {"policy": str(policy_ref(client, policy))} if policy else {}
        answer = client.post(f"/api/rollouts/{rid}:rollback", body)
    typed(RollbackAnswer, answer)
    if fmt.machine:
        emit_data(answer, fmt)
        return
    emit_value(
        f"rollback of rollout {rid} requested: rollout {answer['rollback_id']} sends "
        f"{answer['devices']} devices back; follow it with "
        f"`xdp47 rollouts watch {answer['rollback_id']}`"
    )
