"""``rollouts watch``: exit codes per terminal status, timeout, and one line per
change without a terminal."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.unit.cli.fakes import FakeClock, invoke, json_response, rollout, run
from xdp47_common.models import ProgressState, Rollout, RolloutRun
from xdp47_common.rollout.progress import CountRow, StoredPlan, build_progress

RID = rollout()["id"]


def progress_of(ro: dict[str, Any], runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The progress read model the API would serve for a rollout whose waves hold
    4 devices each, every device of a wave in the state its latest run counts
    (``xdp47_common.rollout.progress``, the API's own builder)."""
    model = Rollout.model_validate(ro)
    parsed = [RolloutRun.model_validate(r) for r in runs]
    latest = {r.wave: r for r in sorted(parsed, key=lambda r: r.attempt)}
    rows = []
    for w, r in latest.items():
        rest = r.eligible - r.succeeded - r.failed - r.skipped
        for state, n in (
            (ProgressState.SUCCEEDED, r.succeeded),
            (ProgressState.FAILED, r.failed),
            (ProgressState.SKIPPED, r.skipped),
            (ProgressState.UPDATING, rest),
        ):
            if n:
                rows.append(
                    CountRow(
                        w, state, "offline" if n and state == "skipped" else None, n
                    )
                )
    plan = StoredPlan([4] * model.waves, max(latest, default=0))
    return build_progress(model, rows, plan, parsed).model_dump(mode="json")


def scripted(states: list[tuple[dict[str, Any], list[dict[str, Any]]]]):
    """Serve each (rollout, runs) state for one poll; the last one forever."""
    polls: Iterator[tuple[dict[str, Any], list[dict[str, Any]]]] = iter(states)
    current = {"state": states[0]}

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == f"/api/rollouts/{RID}/progress":
            current["state"] = next(polls, current["state"])
            return json_response(200, progress_of(*current["state"]))
        return json_response(404, {"detail": "Not Found"})

    return handler


@pytest.mark.parametrize(
    ("status", "code"),
    [("completed", 0), ("partial", 3), ("failed", 4), ("aborted", 5)],
)
def test_exit_code_follows_the_terminal_status(status: str, code: int) -> None:
    handler = scripted(
        [
            (rollout("running"), [run(1, succeeded=2)]),
            (rollout(status, reason="why"), [run(1, succeeded=4, outcome="succeeded")]),
        ]
    )
    clock = FakeClock()
    result = invoke(handler, "rollouts", "watch", RID, "--interval", "2", clock=clock)
    assert result.exit_code == code, result.output
    assert clock.sleeps == [2.0]
    assert f"rollout {RID} {status}: why" in result.output


def test_a_rollout_that_never_ends_times_out_with_6() -> None:
    handler = scripted([(rollout("running"), [run(1)])])
    clock = FakeClock()
    result = invoke(
        handler,
        "rollouts",
        "watch",
        RID,
        "--timeout",
        "5",
        "--interval",
        "2",
        clock=clock,
    )
    assert result.exit_code == 6
    assert clock.now == pytest.approx(5.0)
    assert clock.sleeps == [2.0, 2.0, 1.0]
    assert (
        result.stderr.strip() == f"timed out after 5s: rollout {RID} is still running"
    )


def test_draft_is_not_terminal() -> None:
    handler = scripted([(rollout("draft", current_wave=None), [])])
    result = invoke(handler, "rollouts", "watch", RID, "--timeout", "1")
    assert result.exit_code == 6


def test_without_a_terminal_one_line_per_change() -> None:
    handler = scripted(
        [
            (rollout("running"), [run(1, succeeded=1)]),
            (rollout("running"), [run(1, succeeded=1)]),  # no change: no line
            (rollout("running"), [run(1, succeeded=3, failed=1)]),
            (
                rollout("running", current_wave=2),
                [run(1, succeeded=3, failed=1, outcome="succeeded"), run(2)],
            ),
            (
                rollout("completed", current_wave=2),
                [
                    run(1, succeeded=3, failed=1, outcome="succeeded"),
                    run(2, succeeded=4),
                ],
            ),
        ]
    )
    result = invoke(handler, "rollouts", "watch", RID, "--interval", "0.1")
    assert result.exit_code == 0
    tail = ", 0 waiting, 0 not_started of 4"
    assert result.stdout.splitlines() == [
        f"rollout {RID} running wave 1/2",
        f"wave 1 (attempt 1): 1 succeeded, 0 failed, 0 skipped, 3 updating{tail}",
        "wave 2: 0 succeeded, 0 failed, 0 skipped, 0 updating, 4 waiting,"
        " 0 not_started of 4",
        f"wave 1 (attempt 1): 3 succeeded, 1 failed, 0 skipped, 0 updating{tail}",
        f"rollout {RID} running wave 2/2",
        f"wave 1 (attempt 1): 3 succeeded, 1 failed, 0 skipped, 0 updating{tail}"
        " succeeded",
        f"wave 2 (attempt 1): 0 succeeded, 0 failed, 0 skipped, 4 updating{tail}",
        f"rollout {RID} completed wave 2/2",
        f"wave 2 (attempt 1): 4 succeeded, 0 failed, 0 skipped, 0 updating{tail}",
        f"rollout {RID} completed",
    ]


def test_the_latest_attempt_of_a_wave_is_shown() -> None:
    runs = [run(1, failed=4, outcome="failed"), run(1, attempt=2, succeeded=4)]
    handler = scripted([(rollout("completed", waves=1), runs)])
    result = invoke(handler, "rollouts", "watch", RID)
    assert "wave 1 (attempt 2): 4 succeeded" in result.stdout


def test_a_503_while_watching_is_retried() -> None:
    answers = iter(
        [
            json_response(200, progress_of(rollout("running"), [run(1)])),
            json_response(503, {"detail": "database unavailable"}),
            json_response(
                200, progress_of(rollout("completed"), [run(1, succeeded=4)])
            ),
        ]
    )

    def handler(request: httpx.Request) -> httpx.Response:
        return next(answers)

    result = invoke(handler, "rollouts", "watch", RID, "--interval", "1")
    assert result.exit_code == 0
    assert "api unavailable, retrying: database unavailable" in result.stderr


def test_an_unknown_rollout_is_one_line() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return json_response(404, {"detail": f"rollout '{RID}' not found"})

    result = invoke(handler, "rollouts", "watch", RID)
    assert result.exit_code == 1
    assert result.stderr == f"error: 404 rollout '{RID}' not found\n"


def test_on_a_terminal_a_live_view_draws_a_bar_per_wave() -> None:
    import io
    import uuid

    from rich.console import Console

    from xdp47_cli.client import ApiClient
    from xdp47_cli.watch import watch

    handler = scripted(
        [
            (rollout("running"), [run(1, succeeded=2, failed=1, skipped=1)]),
            (rollout("failed", reason="wave 1: 1 failure"), [run(1, failed=4)]),
        ]
    )
    screen = io.StringIO()
    clock = FakeClock()
    with ApiClient("http://api.test", "t", transport=httpx.MockTransport(handler)) as c:
        code = watch(
            c,
            uuid.UUID(RID),
            timeout=None,
            interval=1,
            clock=clock,
            sleep=clock.sleep,
            out=Console(file=screen, force_terminal=True, width=120),
            err=Console(file=screen, force_terminal=True, width=120),
        )
    assert code == 4
    text = screen.getvalue()
    assert "█" in text  # the stacked bar of wave 1
    assert "not_started" in text  # the column of wave 2, which never started
    assert "reason: wave 1: 1 failure" in text


def test_completed_with_no_device_updated_exits_with_7() -> None:
    """Zero eligible devices under abort_on_zero_eligible=false: the rollout
    completes, but CI must not read it as a release that reached the fleet."""
    empty = Rollout.model_validate(rollout("completed", reason="0 devices updated"))
    body = build_progress(empty, [], StoredPlan([0, 0], 0), []).model_dump(mode="json")

    def handler(request: httpx.Request) -> httpx.Response:
        return json_response(200, body)

    result = invoke(handler, "rollouts", "watch", RID)
    assert result.exit_code == 7, result.output
    assert "(no device was updated)" in result.stderr


def test_a_waves_late_joiners_are_counted_on_its_line() -> None:
    ro = rollout("running", waves=1)
    model = Rollout.model_validate(ro)
    rows = [
        CountRow(1, ProgressState.UPDATING, None, 3, late=1),
        CountRow(1, ProgressState.SUCCEEDED, None, 2, late=1),
    ]
    progress = build_progress(model, rows, StoredPlan([4], 1), []).model_dump(
        mode="json"
    )
    assert progress["late"] == 2
    assert progress["waves"][0]["late"] == 2

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/progress"):
            return json_response(200, progress)
        return json_response(200, ro)

    result = invoke(handler, "rollouts", "get", RID)
    assert result.exit_code == 0, result.output
    assert "of 5 (2 late)" in result.stdout
