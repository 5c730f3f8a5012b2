"""``xdp47 rollouts plan``: the devices per wave and the devices left out.

``GET /api/rollouts/{id}/plan`` is newer than the rest of the API; an API without
it answers 405, or 404 with FastAPI's bare "Not Found" (a missing rollout's 404
names the rollout), and the CLI says so in one line.
"""

from __future__ import annotations

from datetime import UTC
from typing import Any
from uuid import UUID

from rich.console import Console
from rich.text import Text

from xdp47_cli.client import ApiClient
from xdp47_cli.commands._common import typed
from xdp47_cli.errors import ApiError, CliError
from xdp47_cli.output import OutputFormat, cell, console, emit_data, emit_table
from xdp47_common.models import PlannedDevice, RolloutPlan

__all__ = ["fetch_plan", "show_plan"]

SHOWN_DEVICES = 8  # device ids listed per wave in the table


def fetch_plan(client: ApiClient, rollout_id: UUID) -> dict[str, Any]:
    path = f"/api/rollouts/{rollout_id}/plan"
    try:
        plan: dict[str, Any] = client.get(path)
    except ApiError as exc:
        if exc.status == 405 or (exc.status == 404 and exc.detail == "Not Found"):
            raise CliError(
                f"this API has no plan endpoint (GET {path} answered {exc.status}); "
                "it needs a newer xdp47-api"
            ) from exc
        raise
    return plan


def _device(d: PlannedDevice) -> str:
    """A device id with what the plan says of it: would be skipped, a late
    joiner, its window (open now, or when it opens in UTC)."""
    notes = []
    if d.would_skip:
        notes.append("would skip")
    if d.late:
        notes.append("late")
    if d.window_open:
        notes.append("window open")
    elif d.window_opens_at is not None:
        notes.append(
            f"window opens {d.window_opens_at.astimezone(UTC):%Y-%m-%d %H:%M} UTC"
        )
    elif d.window_open is False:
        notes.append("no window within 15 days")
    return d.device_id + (f" ({', '.join(notes)})" if notes else "")


def show_plan(client: ApiClient, rollout_id: UUID, fmt: OutputFormat) -> None:
    raw = fetch_plan(client, rollout_id)
    plan = typed(RolloutPlan, raw)
    if fmt.machine:
        emit_data(raw, fmt)
        return
    out = console()
    kind = (
        "preview (draft: what starting now would do)"
        if plan.preview
        else "stored targets"
    )
    out.print(
        Text(
            f"rollout {plan.rollout_id} {plan.status.value}: {kind}\n"
            f"{plan.total} devices in {len(plan.waves)} waves; "
            f"skip_offline={'yes' if plan.skip_offline else 'no'}"
        )
    )
    rows = []
    for wave in plan.waves:
        ids = [_device(d) for d in wave.devices[:SHOWN_DEVICES]]
        more = wave.size - len(ids)
        if more > 0:
            ids.append(f"… {more} more")
        rows.append(
            [str(wave.wave), str(wave.size), cell(wave.states), ", ".join(ids) or "-"]
        )
    emit_table(["WAVE", "SIZE", "STATES", "DEVICES"], rows)
    if plan.excluded_counts:
        counts = ", ".join(
            f"{reason}: {n}" for reason, n in plan.excluded_counts.items()
        )
        out.print(Text(f"excluded: {counts}"))
    if plan.preview and plan.total == 0:
        # stderr: a warning, so `-o table` output piped elsewhere stays clean.
        Console(stderr=True).print(
            Text(
                "warning: no eligible device: starting this rollout updates no "
                "device (it ends aborted by default; completed with 0 devices "
                "updated under abort_on_zero_eligible: false)"
            ),
            style="yellow",
        )
