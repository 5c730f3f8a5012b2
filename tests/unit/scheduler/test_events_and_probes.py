"""Pure pieces of the scheduler: event messages, settings and the probe server."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from pydantic import ValidationError

from xdp47_common.rollout import DecisionEvent, EventName, RolloutStatus
from xdp47_scheduler.events import event_messages
from xdp47_scheduler.http import ProbeServer
from xdp47_scheduler.settings import SchedulerSettings

RID = uuid.UUID("12345678-1234-5678-1234-567812345678")


def test_event_messages_carry_the_decision_and_stable_ids():
    decision_events = (
        DecisionEvent(EventName.WAVE_FINISHED, wave=1, reason="wave 1: 3 of 3"),
        DecisionEvent(EventName.FAILED, 1, RolloutStatus.FAILED, "bad"),
    )
    first = event_messages("acme", RID, 2, decision_events)
    again = event_messages("acme", RID, 2, decision_events)
    assert [e.event for e in first] == ["wave_finished", "failed"]
    assert first[1].status == "failed"
    assert first[0].data == {"attempt": 2}
    assert [e.message_id for e in first] == [e.message_id for e in again]
    other_attempt = event_messages("acme", RID, 3, decision_events)
    assert first[0].message_id != other_attempt[0].message_id


def test_http_addr_must_be_host_and_port():
    assert SchedulerSettings(sched_http_addr="127.0.0.1:9100").sched_http_addr
    with pytest.raises(ValidationError, match="sched_http_addr"):
        SchedulerSettings(sched_http_addr="not an address")


async def _get(port: int, path: str) -> tuple[int, bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    await writer.drain()
    data = await reader.read()
    writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


async def test_probe_server_answers_liveness_readiness_and_metrics():
    ready = True

    async def check() -> bool:
        return ready

    server = ProbeServer("127.0.0.1:0", check)
    await server.start()
    try:
        assert await _get(server.port, "/livez") == (200, b'{"status":"ok"}')
        assert (await _get(server.port, "/readyz"))[0] == 200
        ready = False
        assert (await _get(server.port, "/readyz"))[0] == 503
        status, body = await _get(server.port, "/metrics")
        assert status == 200
        assert b"xdp47_scheduler_waves_started_total" in body
        assert (await _get(server.port, "/nope"))[0] == 404
    finally:
        await server.close()
