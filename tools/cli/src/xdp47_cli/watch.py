"""``xdp47 rollouts watch``: poll a rollout and its runs until a terminal status.

A terminal shows a rich live view: the status line and one stacked progress bar
per wave (succeeded, failed, skipped, pending of the wave's eligible devices, from
the wave's latest attempt). Without a terminal it prints one line per change, so
logs and CI output stay readable. The exit code tells how the rollout ended; see
:data:`EXIT_CODES` and docs/cli.md.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from uuid import UUID

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from xdp47_cli.client import ApiClient
from xdp47_cli.commands._common import typed
from xdp47_cli.errors import ApiError, ExitCode
from xdp47_common.models import Rollout, RolloutRun
from xdp47_common.rollout.status import RolloutStatus

__all__ = [
    "EXIT_CODES",
    "Snapshot",
    "WaveView",
    "exit_code",
    "fetch_snapshot",
    "status_lines",
    "watch",
]

EXIT_CODES: dict[RolloutStatus, ExitCode] = {
    RolloutStatus.COMPLETED: ExitCode.OK,
    RolloutStatus.PARTIAL: ExitCode.PARTIAL,
    RolloutStatus.FAILED: ExitCode.FAILED,
    RolloutStatus.ABORTED: ExitCode.ABORTED,
}

BAR_WIDTH = 32
_STATUS_STYLE = {
    RolloutStatus.DRAFT: "dim",
    RolloutStatus.RUNNING: "cyan",
    RolloutStatus.COMPLETED: "green",
    RolloutStatus.PARTIAL: "yellow",
    RolloutStatus.FAILED: "red",
    RolloutStatus.ABORTED: "magenta",
}


@dataclass(frozen=True)
class WaveView:
    """A wave as shown: its latest attempt's counts, or not started yet."""

    wave: int
    attempt: int | None = None
    eligible: int = 0
    succeeded: int = 0
    failed: int = 0
    skipped: int = 0
    outcome: str | None = None

    @property
    def started(self) -> bool:
        return self.attempt is not None

    @property
    def pending(self) -> int:
        return max(self.eligible - self.succeeded - self.failed - self.skipped, 0)


@dataclass(frozen=True)
class Snapshot:
    rollout: Rollout
    waves: tuple[WaveView, ...]


def exit_code(status: RolloutStatus) -> ExitCode | None:
    """The exit code of a terminal status; None while the rollout can still move."""
    return EXIT_CODES.get(status)


def fetch_snapshot(client: ApiClient, rollout_id: UUID) -> Snapshot:
    rollout = typed(Rollout, client.get(f"/api/rollouts/{rollout_id}"))
    latest: dict[int, RolloutRun] = {}
    for item in client.pages(f"/api/rollouts/{rollout_id}/runs"):
        run = typed(RolloutRun, item)
        if run.wave not in latest or run.attempt >= latest[run.wave].attempt:
            latest[run.wave] = run
    waves = []
    for n in range(1, max([rollout.waves, *latest]) + 1):
        if n not in latest:
            waves.append(WaveView(wave=n))
            continue
        run = latest[n]
        waves.append(
            WaveView(
                wave=n,
                attempt=run.attempt,
                eligible=run.eligible,
                succeeded=run.succeeded,
                failed=run.failed,
                skipped=run.skipped,
                outcome=run.outcome.value if run.outcome else None,
            )
        )
    return Snapshot(rollout, tuple(waves))


def _rollout_line(rollout: Rollout) -> str:
    wave = (
        f" wave {rollout.current_wave}/{rollout.waves}" if rollout.current_wave else ""
    )
    reason = f" — {rollout.reason}" if rollout.reason else ""
    return f"rollout {rollout.id} {rollout.status.value}{wave}{reason}"


def _wave_line(view: WaveView) -> str:
    if not view.started:
        return f"wave {view.wave}: not started"
    outcome = f" {view.outcome}" if view.outcome else ""
    return (
        f"wave {view.wave} (attempt {view.attempt}): {view.succeeded} succeeded, "
        f"{view.failed} failed, {view.skipped} skipped, {view.pending} pending "
        f"of {view.eligible}{outcome}"
    )


def status_lines(snap: Snapshot) -> dict[str, str]:
    """One line per thing that can change, keyed so changes can be detected."""
    lines = {"rollout": _rollout_line(snap.rollout)}
    for view in snap.waves:
        if view.started:
            lines[f"wave {view.wave}"] = _wave_line(view)
    return lines


def _bar(view: WaveView, width: int = BAR_WIDTH) -> Text:
    total = max(view.eligible, 1)
    parts = [
        (view.succeeded, "green"),
        (view.failed, "red"),
        (view.skipped, "yellow"),
    ]
    bar = Text()
    used = 0
    for count, style in parts:
        cells = round(width * count / total)
        cells = min(cells, width - used)
        bar.append("█" * cells, style=style)
        used += cells
    bar.append("░" * (width - used), style="dim")
    return bar


def render(snap: Snapshot) -> RenderableType:
    rollout = snap.rollout
    style = _STATUS_STYLE.get(rollout.status, "")
    head = Text.from_markup(
        f"rollout [bold]{rollout.id}[/] [{style}]{rollout.status.value}[/]"
        + (
            f" · wave {rollout.current_wave}/{rollout.waves}"
            if rollout.current_wave
            else ""
        )
    )
    if rollout.reason:
        head.append(f"\nreason: {rollout.reason}")
    table = Table(box=None, show_edge=False, pad_edge=False, header_style="bold")
    for header in (
        "WAVE",
        "",
        "OK",
        "FAILED",
        "SKIPPED",
        "PENDING",
        "ELIGIBLE",
        "OUTCOME",
    ):
        table.add_column(
            header, justify="left" if header in ("WAVE", "", "OUTCOME") else "right"
        )
    for view in snap.waves:
        if not view.started:
            table.add_row(
                str(view.wave),
                Text("·" * BAR_WIDTH, style="dim"),
                "",
                "",
                "",
                "",
                "",
                "not started",
            )
            continue
        table.add_row(
            str(view.wave)
            + (f" #{view.attempt}" if view.attempt and view.attempt > 1 else ""),
            _bar(view),
            str(view.succeeded),
            str(view.failed),
            str(view.skipped),
            str(view.pending),
            str(view.eligible),
            escape(view.outcome or "running"),
        )
    return Group(head, table)


def watch(
    client: ApiClient,
    rollout_id: UUID,
    *,
    timeout: float | None,
    interval: float,
    clock: Callable[[], float],
    sleep: Callable[[float], None],
    out: Console,
    err: Console,
) -> ExitCode:
    """Follow a rollout until it ends or ``timeout`` seconds pass."""
    deadline = None if timeout is None else clock() + timeout
    snap = fetch_snapshot(client, rollout_id)
    printed: dict[str, str] = {}
    live = (
        Live(render(snap), console=out, auto_refresh=False) if out.is_terminal else None
    )

    def show(current: Snapshot) -> None:
        if live is not None:
            live.update(render(current), refresh=True)
            return
        for key, line in status_lines(current).items():
            if printed.get(key) != line:
                out.print(line, markup=False, highlight=False, soft_wrap=True)
                printed[key] = line

    def step() -> ExitCode:
        nonlocal snap
        while True:
            show(snap)
            code = exit_code(snap.rollout.status)
            if code is not None:
                return code
            if deadline is not None and clock() >= deadline:
                return ExitCode.TIMEOUT
            remaining = (
                interval if deadline is None else min(interval, deadline - clock())
            )
            sleep(max(remaining, 0.0))
            snap = _refetch(client, rollout_id, snap, err)

    if live is None:
        code = step()
    else:
        with live:
            code = step()
    _summary(snap, code, timeout, err if code else out)
    return code


def _refetch(
    client: ApiClient, rollout_id: UUID, last: Snapshot, err: Console
) -> Snapshot:
    try:
        return fetch_snapshot(client, rollout_id)
    except ApiError as exc:
        # 503 is the API saying "retry": keep watching with what we last saw.
        if exc.status != 503:
            raise
        err.print(f"api unavailable, retrying: {escape(exc.detail)}", highlight=False)
        return last


def _summary(
    snap: Snapshot, code: ExitCode, timeout: float | None, console: Console
) -> None:
    rollout = snap.rollout
    if code is ExitCode.TIMEOUT:
        message = (
            f"timed out after {timeout:g}s: rollout {rollout.id} is still "
            f"{rollout.status.value}"
        )
    else:
        reason = f": {rollout.reason}" if rollout.reason else ""
        message = f"rollout {rollout.id} {rollout.status.value}{reason}"
    console.print(message, markup=False, highlight=False, soft_wrap=True)
