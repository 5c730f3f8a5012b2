"""``xdp47 rollouts watch``: poll a rollout's progress until a terminal status.

Each poll reads the progress read model (``GET /api/rollouts/{id}/progress``), the
numbers the web UI and ``rollouts get`` show. A terminal shows a rich live view:
the status line and one stacked bar per wave (succeeded, failed, skipped,
updating, waiting, not_started). Without a terminal it prints one line per
change, so logs and CI output stay readable. The exit code tells how the rollout
ended; see :func:`exit_code` and docs/cli.md.
"""

from __future__ import annotations

from collections.abc import Callable
from uuid import UUID

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from xdp47_cli.client import ApiClient
from xdp47_cli.commands._common import typed
from xdp47_cli.errors import ApiError, ExitCode
from xdp47_common.models import PROGRESS_STATES, RolloutProgress, WaveProgress
from xdp47_common.rollout.status import RolloutStatus

__all__ = [
    "EXIT_CODES",
    "exit_code",
    "fetch_progress",
    "progress_table",
    "status_lines",
    "watch",
    "wave_line",
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
_STATE_STYLE = {
    "succeeded": "green",
    "failed": "red",
    "skipped": "yellow",
    "updating": "cyan",
    "waiting": "blue",
    "not_started": "magenta",
}


def exit_code(progress: RolloutProgress) -> ExitCode | None:
    """The exit code of a terminal status; None while the rollout can still move.

    A rollout that completed without updating a single device (no eligible
    device, under a policy that does not abort then) exits with its own code, so
    CI never reads it as a release that reached the fleet.
    """
    if progress.status is RolloutStatus.COMPLETED and progress.nothing_updated:
        return ExitCode.NOTHING_UPDATED
    return EXIT_CODES.get(progress.status)


def fetch_progress(client: ApiClient, rollout_id: UUID) -> RolloutProgress:
    return typed(RolloutProgress, client.get(f"/api/rollouts/{rollout_id}/progress"))


def _rollout_line(p: RolloutProgress) -> str:
    wave = f" wave {p.current_wave}/{len(p.waves)}" if p.current_wave else ""
    attempt = f" attempt {p.attempt}" if p.attempt > 1 else ""
    reason = f" — {p.reason}" if p.reason else ""
    hold = f" ({p.hold.value})" if p.hold else ""
    return f"rollout {p.rollout_id} {p.status.value}{hold}{wave}{attempt}{reason}"


def wave_line(w: WaveProgress) -> str:
    """One wave in words: every state with its count, then the latest outcome."""
    counts = ", ".join(f"{w.counts.of(s)} {s.value}" for s in PROGRESS_STATES)
    attempt = f" (attempt {w.attempt})" if w.attempt else ""
    outcome = f" {w.outcome.value}" if w.outcome else ""
    late = f" ({w.late} late)" if w.late else ""
    return f"wave {w.wave}{attempt}: {counts} of {w.total}{late}{outcome}"


def status_lines(p: RolloutProgress) -> dict[str, str]:
    """One line per thing that can change, keyed so changes can be detected."""
    lines = {"rollout": _rollout_line(p)}
    for w in p.waves:
        lines[f"wave {w.wave}"] = wave_line(w)
    return lines


def _bar(w: WaveProgress, width: int = BAR_WIDTH) -> Text:
    total = max(w.total, 1)
    bar = Text()
    used = 0
    for state in PROGRESS_STATES:
        cells = min(round(width * w.counts.of(state) / total), width - used)
        bar.append("█" * cells, style=_STATE_STYLE[state.value])
        used += cells
    bar.append("░" * (width - used), style="dim")
    return bar


def progress_table(p: RolloutProgress) -> Table:
    """The per-wave table (``watch``'s live view and ``rollouts get``)."""
    table = Table(box=None, show_edge=False, pad_edge=False, header_style="bold")
    headers = [
        "wave",
        "",
        *(s.value for s in PROGRESS_STATES),
        "total",
        "late",
        "outcome",
    ]
    for header in headers:
        table.add_column(
            header, justify="left" if header in ("wave", "", "outcome") else "right"
        )
    for w in p.waves:
        table.add_row(
            str(w.wave) + (f" #{w.attempt}" if w.attempt and w.attempt > 1 else ""),
            _bar(w),
            *(str(w.counts.of(s)) for s in PROGRESS_STATES),
            str(w.total),
            str(w.late),
            escape(w.outcome.value if w.outcome else ("running" if w.current else "")),
        )
    return table


def render(p: RolloutProgress) -> RenderableType:
    style = _STATUS_STYLE.get(p.status, "")
    head = Text.from_markup(
        f"rollout [bold]{p.rollout_id}[/] [{style}]{p.status.value}[/]"
        + (f" [yellow]({p.hold.value})[/]" if p.hold else "")
        + (f" · wave {p.current_wave}/{len(p.waves)}" if p.current_wave else "")
        + (f" · attempt {p.attempt}" if p.attempt > 1 else "")
    )
    if p.reason:
        head.append(f"\nreason: {p.reason}")
    return Group(head, progress_table(p))


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
    snap = fetch_progress(client, rollout_id)
    printed: dict[str, str] = {}
    live = (
        Live(render(snap), console=out, auto_refresh=False) if out.is_terminal else None
    )

    def show(current: RolloutProgress) -> None:
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
            code = exit_code(snap)
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
    client: ApiClient, rollout_id: UUID, last: RolloutProgress, err: Console
) -> RolloutProgress:
    try:
        return fetch_progress(client, rollout_id)
    except ApiError as exc:
        # 503 is the API saying "retry": keep watching with what we last saw.
        if exc.status != 503:
            raise
        err.print(f"api unavailable, retrying: {escape(exc.detail)}", highlight=False)
        return last


def _summary(
    p: RolloutProgress, code: ExitCode, timeout: float | None, console: Console
) -> None:
    if code is ExitCode.TIMEOUT:
        message = (
            f"timed out after {timeout:g}s: rollout {p.rollout_id} is still "
            f"{p.status.value}"
        )
    else:
        reason = f": {p.reason}" if p.reason else ""
        message = f"rollout {p.rollout_id} {p.status.value}{reason}"
        if code is ExitCode.NOTHING_UPDATED:
            message += " (no device was updated)"
    console.print(message, markup=False, highlight=False, soft_wrap=True)
