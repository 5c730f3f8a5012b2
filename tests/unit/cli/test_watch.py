"""``rollouts watch``: exit codes per terminal status, timeout, and one line per
change without a terminal."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.unit.cli.fakes import FakeClock, invoke, json_response, rollout, run

RID = rollout()["id"]


def scripted(states: list[tuple[dict[str, Any], list[dict[str, Any]]]]):
    """Serve each (rollout, runs) state for one poll; the last one forever."""
    polls: Iterator[tuple[dict[str, Any], list[dict[str, Any]]]] = iter(states)
    current = {"state": states[0]}

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == f"/api/rollouts/{RID}":
            current["state"] = next(polls, current["state"])
            return json_response(200, current["state"][0])
        if request.url.path == f"/api/rollouts/{RID}/runs":
            return json_response(200, current["state"][1])
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
    assert result.stdout.splitlines() == [
        f"rollout {RID} running wave 1/2",
        "wave 1 (attempt 1): 1 succeeded, 0 failed, 0 skipped, 3 pending of 4",
        "wave 1 (attempt 1): 3 succeeded, 1 failed, 0 skipped, 0 pending of 4",
        f"rollout {RID} running wave 2/2",
        "wave 1 (attempt 1): 3 succeeded, 1 failed, 0 skipped, 0 pending of 4"
        " succeeded",
        "wave 2 (attempt 1): 0 succeeded, 0 failed, 0 skipped, 4 pending of 4",
        f"rollout {RID} completed wave 2/2",
        "wave 2 (attempt 1): 4 succeeded, 0 failed, 0 skipped, 0 pending of 4",
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
            json_response(200, rollout("running")),
            json_response(503, {"detail": "database unavailable"}),
            json_response(200, rollout("completed")),
        ]
    )

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/runs"):
            return json_response(200, [])
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
    assert "not started" in text  # wave 2 has no run yet
    assert "reason: wave 1: 1 failure" in text
