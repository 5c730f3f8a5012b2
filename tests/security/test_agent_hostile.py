"""The agent under a hostile control plane and artifact host.

Each case starts from a device that applied v1 (from a dated desired state, so
the replay high-water mark exists), then offers one hostile answer: tampered,
truncated, endless, stalled, other-device artifacts; replayed-older, other-device,
endless, stalled, truncated desired states; redirects to another scheme or host;
traversal in names. Every case must be rejected with nothing written anywhere
under the case's parent dir (the state dir and its siblings are snapshotted) and
v1 still applied. The crash-at-every-step figure reuses the unit test's harness.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.unit.agent import test_crash_consistency as crash
from tests.unit.agent.support import (
    ArtifactServer,
    FakeControlPlane,
    Sleeps,
    desired_for,
    make_config,
    snapshot,
)
from xdp47_agent.agent import Agent
from xdp47_agent.httpx_adapter import HttpxHttp
from xdp47_agent.protocol import MAX_ANSWER_BYTES, ProtocolError

pytestmark = pytest.mark.security

V1 = b"release one\n" * 100
CONTENT = random.Random(3).randbytes(40_000)
OTHER_DEVICE_CONTENT = random.Random(4).randbytes(40_000)
DEVICE = "dev-hostile-1"
T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


class HostileControlPlane(FakeControlPlane):
    """``FakeControlPlane`` whose next heartbeat (or claim) answer can be replaced
    by a crafted ``httpx.Response``."""

    def __init__(self) -> None:
        super().__init__()
        self.heartbeat_answer: Callable[[], httpx.Response] | None = None
        self.claim_answer: dict[str, Any] | None = None

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if request.url.host == "control.test":
            if path.endswith("/heartbeat") and self.heartbeat_answer is not None:
                return self.heartbeat_answer()
            if path == "/api/devices/claim" and self.claim_answer is not None:
                return httpx.Response(201, json=self.claim_answer)
        return await super().handle_async_request(request)


class _Endless(httpx.AsyncByteStream):
    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield b'{"action": "update", "version": "'
        while True:
            yield b"x" * 8192


class _Stalled(httpx.AsyncByteStream):
    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield b'{"action": '
        await asyncio.Event().wait()


@dataclass
class Harness:
    agent: Agent
    control: HostileControlPlane
    server: ArtifactServer
    root: Path  # the parent dir snapshotted around each case


Case = Callable[[Harness], Awaitable[None]]


def _dated(desired: dict[str, Any], when: datetime) -> dict[str, Any]:
    return {**desired, "server_time": when.isoformat(), "device_id": DEVICE}


def _serve(h: Harness, content: bytes, route: str = "/a") -> str:
    h.server.routes[route] = ArtifactServer.body(content)
    return h.server.url(route)


def _offer(desired: dict[str, Any]) -> Case:
    async def run(h: Harness) -> None:
        h.control.desired = desired
        await h.agent.step()

    return run


def artifact_case(make: Callable[[Harness], dict[str, Any]]) -> Case:
    async def run(h: Harness) -> None:
        h.control.desired = _dated(make(h), T0 + timedelta(hours=1))
        await h.agent.step()

    return run


def answer_case(response: Callable[[], httpx.Response]) -> Case:
    async def run(h: Harness) -> None:
        h.control.heartbeat_answer = response
        try:
            await h.agent.step()
        finally:
            h.control.heartbeat_answer = None

    return run


def _flipped(content: bytes) -> bytes:
    data = bytearray(content)
    data[12345] ^= 0x01
    return bytes(data)


def _tampered(h: Harness) -> dict[str, Any]:
    return desired_for(CONTENT, _serve(h, _flipped(CONTENT)))


def _truncated(h: Harness) -> dict[str, Any]:
    return desired_for(CONTENT, _serve(h, CONTENT[:-1]))


def _lying_length(h: Harness) -> dict[str, Any]:
    h.server.routes["/a"] = ArtifactServer.body(CONTENT[:1000], length=len(CONTENT))
    return desired_for(CONTENT, h.server.url("/a"))


def _endless(h: Harness) -> dict[str, Any]:
    h.server.routes["/a"] = ArtifactServer.endless()
    return desired_for(CONTENT, h.server.url("/a"), size=None)


def _stalled(h: Harness) -> dict[str, Any]:
    h.server.routes["/a"] = ArtifactServer.stall(CONTENT[:5000], len(CONTENT))
    return desired_for(CONTENT, h.server.url("/a"))


def _other_device_artifact(h: Harness) -> dict[str, Any]:
    # Our manifest, but the host serves the bytes meant for another device.
    return desired_for(CONTENT, _serve(h, OTHER_DEVICE_CONTENT))


def _redirect(location: str) -> Callable[[Harness], dict[str, Any]]:
    def make(h: Harness) -> dict[str, Any]:
        _serve(h, CONTENT, "/real")
        target = location.format(port=h.server.port)
        h.server.routes["/r"] = ArtifactServer.redirect(target)
        return desired_for(CONTENT, h.server.url("/r"))

    return make


def _uri(uri: str) -> Callable[[Harness], dict[str, Any]]:
    def make(h: Harness) -> dict[str, Any]:
        return desired_for(CONTENT, uri)

    return make


def _named(artifact_id: str) -> Callable[[Harness], dict[str, Any]]:
    def make(h: Harness) -> dict[str, Any]:
        return desired_for(CONTENT, _serve(h, CONTENT), artifact_id=artifact_id)

    return make


async def _replayed_older(h: Harness) -> None:
    # A genuine, validly formed answer for a real artifact, issued before the
    # one v1 came from: served again, it must not move the device.
    old = _dated(desired_for(CONTENT, _serve(h, CONTENT)), T0 - timedelta(hours=1))
    await _offer(old)(h)


async def _undated_after_dated(h: Harness) -> None:
    await _offer({**desired_for(CONTENT, _serve(h, CONTENT)), "device_id": DEVICE})(h)


async def _wrong_device_manifest(h: Harness) -> None:
    other = desired_for(CONTENT, _serve(h, CONTENT))
    await _offer({**_dated(other, T0 + timedelta(hours=1)), "device_id": "dev-2"})(h)


async def _claim_traversal(h: Harness) -> None:
    # The credential is refused; the re-claim answer names another device id,
    # one made of path segments.
    h.control.revoke(DEVICE)
    h.control.claim_answer = {
        "device_id": "../../etc/cron.d/x",
        "tenant": "acme",
        "credential": "stolen",
    }
    await h.agent.step()


CASES: dict[str, Case] = {
    "artifact tampered (bit flip)": artifact_case(_tampered),
    "artifact truncated by 1 B": artifact_case(_truncated),
    "artifact shorter than its Content-Length": artifact_case(_lying_length),
    "artifact endless (no size)": artifact_case(_endless),
    "artifact stalled mid-way": artifact_case(_stalled),
    "artifact of another device": artifact_case(_other_device_artifact),
    "redirect to another host": artifact_case(
        _redirect("http://localhost:{port}/real")
    ),
    "redirect to another scheme": artifact_case(
        _redirect("https://127.0.0.1:{port}/real")
    ),
    "redirect to file://": artifact_case(_redirect("file:///etc/passwd")),
    "uri file://": artifact_case(_uri("file:///etc/passwd")),
    "uri with credentials": artifact_case(_uri("http://u:p@127.0.0.1:9/a")),
    "artifact id ../../escape": artifact_case(_named("../../escape")),
    "artifact id /etc/passwd": artifact_case(_named("/etc/passwd")),
    "artifact id with NUL": artifact_case(_named("x\x00y")),
    "desired state replayed (older)": _replayed_older,
    "desired state undated after a dated apply": _undated_after_dated,
    "desired state for another device": _wrong_device_manifest,
    "desired state endless": answer_case(
        lambda: httpx.Response(202, stream=_Endless())
    ),
    "desired state stalled": answer_case(
        lambda: httpx.Response(202, stream=_Stalled())
    ),
    "desired state truncated JSON": answer_case(
        lambda: httpx.Response(202, content=b'{"action": "upd')
    ),
    "desired state redirect": answer_case(
        lambda: httpx.Response(307, headers={"location": "http://evil.test/hb"})
    ),
    "claim answer with traversal device id": _claim_traversal,
}


async def _harness(root: Path, server: ArtifactServer) -> Harness:
    control = HostileControlPlane()
    client = httpx.AsyncClient(transport=control)
    config = make_config(
        root / "state",
        device_id=DEVICE,
        request_timeout=0.3,
        download_stall_timeout=1.0,
    )
    agent = Agent(config, HttpxHttp(client), sleep=Sleeps(), rng=random.Random(7))
    h = Harness(agent, control, server, root)
    server.routes["/v1"] = ArtifactServer.body(V1)
    control.desired = _dated(desired_for(V1, server.url("/v1"), version="1.0.0"), T0)
    await agent.step()
    control.desired = {"action": "none"}
    await agent.step()
    assert agent.current is not None
    assert agent.current.version == "1.0.0"
    return h


def _bytes_changed(before: dict[str, str], after: dict[str, str], root: Path) -> int:
    changed = [p for p, digest in after.items() if before.get(p) != digest]
    return sum((root / p).stat().st_size for p in changed) + len(
        set(before) - set(after)
    )


@pytest.fixture
async def server() -> AsyncIterator[ArtifactServer]:
    s = ArtifactServer()
    await s.start()
    yield s
    await s.stop()


async def test_every_hostile_case_is_rejected(
    server: ArtifactServer, tmp_path: Path, figure: Callable[[str], None]
) -> None:
    rejected = 0
    outside = 0
    for n, (name, case) in enumerate(CASES.items()):
        root = tmp_path / f"case{n}"
        (root / "sibling").mkdir(parents=True)
        (root / "sibling" / "keep").write_bytes(b"not the agent's")
        h = await _harness(root, server)
        before = snapshot(root)
        with contextlib.suppress(Exception):  # a refusal may be a protocol error
            await case(h)
        after = snapshot(root)
        state_before = {k: v for k, v in before.items() if k.startswith("state/")}
        state_after = {k: v for k, v in after.items() if k.startswith("state/")}
        outside += _bytes_changed(
            {k: v for k, v in before.items() if k not in state_before},
            {k: v for k, v in after.items() if k not in state_after},
            root,
        )
        assert after == before, (
            f"{name}: files changed {sorted(after.items() ^ before.items())}"
        )
        assert (root / "state" / "applied_version").read_text() == "1.0.0", name
        assert h.agent.current is not None
        assert h.agent.current.version == "1.0.0", name
        rejected += 1
        await h.agent._client.client.aclose()  # type: ignore[attr-defined]
    figure(
        f"HOSTILE agent: cases={len(CASES)} rejected={rejected} "
        f"bytes_outside_state_dir={outside} state_changed=0"
    )


async def test_a_fresh_desired_state_still_applies(
    server: ArtifactServer, tmp_path: Path
) -> None:
    """The defences refuse replays, not progress: a newer answer for this device
    (an operator's rollback is one, issued now) is applied."""
    h = await _harness(tmp_path / "ok", server)
    newer = desired_for(CONTENT, _serve(h, CONTENT), version="0.9.0-rollback")
    await _offer(_dated(newer, T0 + timedelta(minutes=1)))(h)
    assert h.agent.current is not None
    assert h.agent.current.version == "0.9.0-rollback"
    await h.agent._client.client.aclose()  # type: ignore[attr-defined]


async def test_endless_answer_is_cut_at_the_cap(
    server: ArtifactServer, tmp_path: Path
) -> None:
    h = await _harness(tmp_path / "cap", server)
    served = 0

    class Counting(httpx.AsyncByteStream):
        async def __aiter__(self) -> AsyncIterator[bytes]:
            nonlocal served
            while True:
                served += 8192
                yield b" " * 8192

    with pytest.raises(ProtocolError, match="answer larger than"):
        await answer_case(lambda: httpx.Response(202, stream=Counting()))(h)
    assert served <= MAX_ANSWER_BYTES + 8192 * 8  # a few reads at most per try
    await h.agent._client.client.aclose()  # type: ignore[attr-defined]


async def test_crash_at_every_apply_step_leaves_old_or_new(
    server: ArtifactServer, tmp_path: Path, figure: Callable[[str], None]
) -> None:
    """Reuses the unit suite's crash harness (tests/unit/agent) for all three
    fault kinds and reports its figure."""
    control = FakeControlPlane()
    async with httpx.AsyncClient(transport=control) as client:

        def make_agent(**overrides: Any) -> Agent:
            fault = overrides.pop("fault", None)
            config = make_config(overrides.pop("state_dir"), **overrides)
            kwargs: dict[str, Any] = {"sleep": Sleeps(), "rng": random.Random(7)}
            if fault is not None:
                kwargs["fault"] = fault
            return Agent(config, HttpxHttp(client), **kwargs)

        points, _, _ = await crash._reference(make_agent, control, server, tmp_path)
        for kind in ("crash", "EIO", "ENOSPC"):
            await crash.test_fault_at_every_point_leaves_old_or_new(
                make_agent, control, server, tmp_path / kind, kind
            )
    figure(
        f"CRASH agent: fault_points={len(points)} kinds=3 runs={3 * len(points)} "
        "torn_states=0"
    )


def test_cases_hash_differs() -> None:
    # Guards the tampering cases: they must really differ from the manifest.
    assert (
        hashlib.sha256(_flipped(CONTENT)).digest() != hashlib.sha256(CONTENT).digest()
    )
    assert OTHER_DEVICE_CONTENT != CONTENT
