"""The heartbeat answer of a cached device view: the action follows what the
device reports, each answer has its own time (byte equality with the model:
``tests/unit/common/test_wire.py``)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

from xdp47_common.messages import DesiredState
from xdp47_ingest.desired import DeviceView

ARTIFACT = uuid.uuid4()


def _view(current: uuid.UUID | None) -> DeviceView:
    desired = DesiredState(
        action="none" if current == ARTIFACT else "update",
        device_id="d1",
        artifact_id=ARTIFACT,
        version="2.0.0",
        uri="https://cdn.example/a.tar",
        sha256="0" * 64,
        size=7,
        rollout_id=uuid.uuid4(),
    )
    return DeviceView.of("t", "d1", desired)


def test_the_stored_action_is_rewritten_both_ways() -> None:
    done = _view(current=ARTIFACT)  # stored "none": the device ran it
    assert done.action == "none"
    now = datetime.now(UTC)
    assert json.loads(done.answer_json(None, now))["action"] == "update"
    assert json.loads(done.answer_json(ARTIFACT, now))["action"] == "none"
    assert done.payload.startswith(b'{"action":"none"')


def test_the_action_follows_what_the_heartbeat_reports() -> None:
    view = _view(current=None)
    now = datetime.now(UTC)
    assert json.loads(view.answer_json(ARTIFACT, now))["action"] == "none"
    assert json.loads(view.answer_json(None, now))["action"] == "update"
    # Each answer has its own time; the cached bytes are not stamped.
    later = datetime(2030, 1, 1, tzinfo=UTC)
    assert json.loads(view.answer_json(None, later))["server_time"] == (
        "2030-01-01T00:00:00Z"
    )


def test_nothing_desired_answers_none_whatever_the_device_runs() -> None:
    view = DeviceView.of("t", "d1", DesiredState(action="none", device_id="d1"))
    answer = json.loads(view.answer_json(uuid.uuid4(), datetime.now(UTC)))
    assert (answer["action"], answer["artifact_id"]) == ("none", None)
