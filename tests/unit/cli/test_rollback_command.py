"""``xdp47 rollouts rollback``: resolves the rollout and the policy by name, posts
the rollback, names the rollback rollout; the API's 409 is one line."""

from __future__ import annotations

import json
import uuid

import httpx

from tests.unit.cli.fakes import NOW, TENANT, Recorder, invoke, json_response, rollout

RID = str(uuid.UUID(int=7))
BACK = str(uuid.UUID(int=70))
POL = str(uuid.UUID(int=9))


def _api(request: httpx.Request) -> httpx.Response:
    path = request.url.path
    if path == "/api/rollouts":
        return json_response(200, [rollout("completed", name="spring")])
    if path == "/api/policies":
        return json_response(
            200, [{"id": POL, "tenant": TENANT, "name": "slow", "created_at": NOW}]
        )
    if path == f"/api/rollouts/{RID}:rollback":
        answer = rollout("completed", name="spring") | {
            "rollback_id": BACK,
            "devices": 3,
        }
        return json_response(202, answer)
    return json_response(404, {"detail": f"nothing at {path}"})


def test_rollback_by_name_with_a_policy_name() -> None:
    recorder = Recorder(_api)
    result = invoke(recorder, "rollouts", "rollback", "spring", "--policy", "slow")
    assert result.exit_code == 0, result.output
    posted = [r for r in recorder.requests if r.method == "POST"]
    assert [r.url.path for r in posted] == [f"/api/rollouts/{RID}:rollback"]
    assert json.loads(posted[0].content) == {"policy": POL}
    assert f"rollout {BACK} sends 3 devices back" in result.stdout


def test_rollback_without_a_policy_sends_an_empty_body() -> None:
    recorder = Recorder(_api)
    result = invoke(recorder, "rollouts", "rollback", RID, "-o", "json")
    assert result.exit_code == 0, result.output
    assert list(recorder.bodies()) == [{}]
    assert json.loads(result.stdout)["rollback_id"] == BACK


def test_a_refused_rollback_is_one_line() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        return json_response(
            409,
            {"detail": "cannot roll back: no device applied the rollout's artifact"},
        )

    result = invoke(refuse, "rollouts", "rollback", RID)
    assert result.exit_code == 1
    assert "no device applied" in result.stderr
