"""The wire encoders (``xdp47_common.messages.wire``): heartbeats, their batch and
the heartbeat's answer, built from parts on ingest's hot path, are byte for byte
what the models give, and decode back to the same messages."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from xdp47_common.messages import (
    DesiredState,
    Heartbeat,
    HeartbeatBatch,
    HeartbeatBody,
    decode_heartbeats,
    envelope_json,
)
from xdp47_common.messages.wire import heartbeat_batch, heartbeat_json, stamped_answer

# Text as a body may carry it: any character but NUL (which the schema refuses).
_chars = st.characters(codec="utf-8", exclude_characters="\x00")
_text = st.text(_chars, max_size=20)
_metric = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**53), 2**53),
    st.floats(allow_nan=False, allow_infinity=False),
    _text,
)
_last_apply = st.one_of(
    st.none(),
    st.fixed_dictionaries(
        {"artifact_id": st.uuids(), "result": st.sampled_from(["ok", "failed"])},
        optional={"reason": st.one_of(st.none(), _text)},
    ),
)
_bodies = st.builds(
    lambda seq, version, artifact, last_apply, health, metrics: (
        HeartbeatBody.model_validate(
            {
                "seq": seq,
                "current_version": version,
                "current_artifact_id": artifact,
                "last_apply": last_apply,
                "health": health,
                "metrics": metrics,
            }
        )
    ),
    st.integers(0, 2**62),
    st.one_of(st.none(), st.text(_chars, max_size=30)),
    st.one_of(st.none(), st.uuids()),
    _last_apply,
    st.sampled_from(["ok", "degraded", "failing", "unknown"]),
    st.dictionaries(st.text(_chars, max_size=10), _metric, max_size=5),
)
_times = st.datetimes(timezones=st.just(UTC))


def _model(body: HeartbeatBody, device_id: str, at: datetime) -> Heartbeat:
    return Heartbeat.model_validate(
        {**body.model_dump(), "device_id": device_id, "received_at": at}
    )


@settings(max_examples=300)
@given(body=_bodies, device_id=st.text(min_size=1, max_size=40), at=_times)
def test_heartbeat_json_is_the_models_json(
    body: HeartbeatBody, device_id: str, at: datetime
) -> None:
    expected = _model(body, device_id, at)
    wire = heartbeat_json(body, device_id, at)
    assert wire == expected.model_dump_json(exclude_none=True).encode()
    assert Heartbeat.model_validate_json(wire) == expected


def test_heartbeat_json_keeps_an_offset_and_whole_seconds() -> None:
    body = HeartbeatBody(seq=1)
    for at in (
        datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        datetime(2026, 1, 2, 3, 4, 5, 120, tzinfo=timezone(timedelta(hours=2))),
    ):
        expected = _model(body, "dev-1", at).model_dump_json(exclude_none=True)
        assert heartbeat_json(body, "dev-1", at) == expected.encode()


@settings(max_examples=100)
@given(
    beats=st.lists(
        st.tuples(_bodies, st.text(min_size=1, max_size=20), _times),
        min_size=1,
        max_size=8,
    ),
    tenant=st.text(min_size=1, max_size=20),
)
def test_a_prepared_batch_decodes_as_the_batch_and_encodes_back_the_same(
    beats: list[tuple[HeartbeatBody, str, datetime]], tenant: str
) -> None:
    prepared = heartbeat_batch(tenant, [heartbeat_json(*beat) for beat in beats])
    decoded = decode_heartbeats(prepared.body)
    assert decoded.heartbeats == [_model(*beat) for beat in beats]
    assert (decoded.message_id, decoded.tenant, decoded.type, decoded.version) == (
        prepared.message_id,
        tenant,
        prepared.type,
        prepared.version,
    )
    # What goes on the wire is what the model gives, the heartbeats without
    # their null fields (the envelope keeps its own).
    expected = json.loads(decoded.model_dump_json())
    expected["heartbeats"] = [
        json.loads(h.model_dump_json(exclude_none=True)) for h in decoded.heartbeats
    ]
    assert json.loads(envelope_json(prepared)) == expected
    assert isinstance(decoded, HeartbeatBatch)


def test_a_batch_needs_a_heartbeat() -> None:
    with pytest.raises(ValueError, match="at least one"):
        heartbeat_batch("acme", [])


ARTIFACT = uuid.uuid4()


def _desired(action: str) -> DesiredState:
    return DesiredState(
        action=action,
        device_id="d1",
        artifact_id=ARTIFACT,
        version="2.0.0",
        uri="https://cdn.example/a.tar",
        sha256="0" * 64,
        size=7,
        rollout_id=uuid.UUID(int=7),
    )


@pytest.mark.parametrize(
    "stamp",
    [
        datetime(2026, 11, 27, 12, 0, 0, tzinfo=UTC),
        datetime(2026, 11, 27, 12, 0, 0, 123456, tzinfo=UTC),
    ],
)
@pytest.mark.parametrize("stored", ["none", "update"])
@pytest.mark.parametrize("reported", [None, ARTIFACT, uuid.uuid4()])
def test_a_stamped_answer_is_the_models_json(
    stamp: datetime, stored: str, reported: uuid.UUID | None
) -> None:
    desired = _desired(stored)
    action = "none" if reported == ARTIFACT else "update"
    expected = desired.model_copy(update={"action": action, "server_time": stamp})
    raw = stamped_answer(
        desired.model_dump_json().encode(), stored, ARTIFACT, reported, stamp
    )
    assert raw == expected.model_dump_json().encode()
    assert DesiredState.model_validate_json(raw) == expected


def test_nothing_desired_answers_the_stored_action() -> None:
    nothing = DesiredState(action="none")
    now = datetime(2026, 11, 27, 12, 0, 0, tzinfo=UTC)
    raw = stamped_answer(
        nothing.model_dump_json().encode(), "none", None, uuid.uuid4(), now
    )
    assert (
        raw
        == nothing.model_copy(update={"server_time": now}).model_dump_json().encode()
    )
