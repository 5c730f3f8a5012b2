"""Every tampered, oversized, stalled or misdirected artifact is refused: the state
dir stays byte-identical and the reason is in the next heartbeat."""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.unit.agent.conftest import AgentFactory, FakeClock
from tests.unit.agent.support import (
    ArtifactServer,
    FakeControlPlane,
    Signer,
    desired_for,
    snapshot,
)
from xdp47_agent.agent import Agent

GOOD_V1 = b"release one\n" * 100
CONTENT = random.Random(1).randbytes(50_000)


async def _baseline(
    agent: Agent, control: FakeControlPlane, server: ArtifactServer
) -> None:
    """Apply a good v1 so there is a previous state to keep intact."""
    server.routes["/v1"] = ArtifactServer.body(GOOD_V1)
    control.desired = desired_for(GOOD_V1, server.url("/v1"), version="1.0.0")
    assert await agent.step() == 0.0
    assert agent.current is not None
    assert agent.current.version == "1.0.0"


@dataclass(frozen=True, eq=False)
class Refusal:
    code: str
    reason: str

    def __eq__(self, expected: object) -> bool:
        """Equal to ``"code: reason text"`` when the code matches and the reported
        message starts with the reason text (its detail follows)."""
        if not isinstance(expected, str):
            return NotImplemented
        code, _, text = expected.partition(": ")
        return self.code == code and self.reason.startswith(text)


async def _refused(
    agent: Agent, control: FakeControlPlane, state_dir: Path, desired: dict[str, object]
) -> Refusal | None:
    """Offer ``desired``; assert the state dir is unchanged; return the code and
    the reported message."""
    await agent.step()  # report v1 applied
    before = snapshot(state_dir)
    control.desired = desired
    await agent.step()
    assert snapshot(state_dir) == before
    control.desired = {"action": "none"}
    await agent.step()
    report = control.heartbeats[-1]
    assert report["current_version"] == "1.0.0"
    assert (state_dir / "applied_version").read_text() == "1.0.0"
    assert report["last_apply"]["result"] in ("failed", "ok")
    if report["last_apply"]["artifact_id"] != desired.get("artifact_id"):
        return None
    assert report["last_apply"]["result"] == "failed"
    assert len(report["last_apply"]["reason"]) <= 500
    return Refusal(report["last_apply"]["code"], report["last_apply"]["reason"])


@pytest.mark.parametrize("offset", [0, 1, 4095, 4096, 25_000, 49_999])
async def test_bit_flip_is_refused(
    make_agent: AgentFactory, control, server, state_dir, offset
):
    agent = make_agent()
    await _baseline(agent, control, server)
    tampered = bytearray(CONTENT)
    tampered[offset] ^= 0x01
    server.routes["/a"] = ArtifactServer.body(bytes(tampered))
    reason = await _refused(
        agent, control, state_dir, desired_for(CONTENT, server.url("/a"))
    )
    assert reason == "sha256_mismatch: sha256 mismatch"


async def test_same_length_other_file_is_refused(
    make_agent, control, server, state_dir
):
    agent = make_agent()
    await _baseline(agent, control, server)
    server.routes["/a"] = ArtifactServer.body(CONTENT[::-1])
    reason = await _refused(
        agent, control, state_dir, desired_for(CONTENT, server.url("/a"))
    )
    assert reason == "sha256_mismatch: sha256 mismatch"


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        ("auto", "size_mismatch: size mismatch"),
        (None, "sha256_mismatch: sha256 mismatch"),
    ],
)
async def test_truncated_is_refused(
    make_agent, control, server, state_dir, size, expected
):
    agent = make_agent()
    await _baseline(agent, control, server)
    server.routes["/a"] = ArtifactServer.body(CONTENT[:-1])
    desired = desired_for(CONTENT, server.url("/a"), size=size)
    assert await _refused(agent, control, state_dir, desired) == expected


async def test_server_closing_early_is_refused(make_agent, control, server, state_dir):
    """Content-Length promises the full size but the connection ends one byte short."""
    agent = make_agent()
    await _baseline(agent, control, server)
    server.routes["/a"] = ArtifactServer.body(CONTENT[:-1], length=len(CONTENT))
    reason = await _refused(
        agent, control, state_dir, desired_for(CONTENT, server.url("/a"))
    )
    # A truncated body is a size problem, not a generic download failure.
    assert reason == "size_mismatch: size mismatch: connection closed after"


async def test_one_extra_byte_is_refused(make_agent, control, server, state_dir):
    agent = make_agent()
    await _baseline(agent, control, server)
    server.routes["/a"] = ArtifactServer.body(CONTENT + b"!")
    reason = await _refused(
        agent, control, state_dir, desired_for(CONTENT, server.url("/a"))
    )
    assert reason == "size_mismatch: size exceeded"


@pytest.mark.parametrize("size", ["auto", None])
async def test_endless_server_is_cut_off(make_agent, control, server, state_dir, size):
    """Without a declared size the configured maximum (1 MiB here) bounds the read."""
    agent = make_agent()
    await _baseline(agent, control, server)
    server.routes["/a"] = ArtifactServer.endless()
    desired = desired_for(CONTENT, server.url("/a"), size=size)
    assert (
        await _refused(agent, control, state_dir, desired)
        == "size_mismatch: size exceeded"
    )


async def test_declared_size_above_maximum_is_refused_before_connecting(
    make_agent, control, server, state_dir
):
    agent = make_agent(max_artifact_bytes=2000)
    await _baseline(agent, control, server)
    server.routes["/a"] = ArtifactServer.body(CONTENT)
    reason = await _refused(
        agent, control, state_dir, desired_for(CONTENT, server.url("/a"))
    )
    assert reason == "size_mismatch: size exceeded"
    assert server.hits.get("/a", 0) == 0


async def test_stalled_server_is_abandoned(make_agent, control, server, state_dir):
    agent = make_agent(download_stall_timeout=1.0)
    await _baseline(agent, control, server)
    server.routes["/a"] = ArtifactServer.stall(CONTENT[:1000], len(CONTENT))
    reason = await _refused(
        agent, control, state_dir, desired_for(CONTENT, server.url("/a"))
    )
    assert reason == "download_failed: download stalled"


async def test_trickle_hits_the_overall_deadline(
    make_agent, control, server, state_dir
):
    """A byte every 0.1 s never trips the stall timeout, but the deadline ends it."""
    import asyncio

    async def trickle(_: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        w.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(CONTENT))
        for byte in CONTENT:
            w.write(bytes([byte]))
            await w.drain()
            await asyncio.sleep(0.1)

    agent = make_agent(download_timeout=2.0, download_stall_timeout=1.0)
    await _baseline(agent, control, server)
    server.routes["/a"] = trickle
    reason = await _refused(
        agent, control, state_dir, desired_for(CONTENT, server.url("/a"))
    )
    assert reason == "download_failed: download deadline exceeded"


async def test_wrong_signature_is_refused(make_agent, control, server, state_dir):
    trusted, other = Signer(), Signer()
    agent = make_agent(verify_keys=trusted.public_b64)
    server.routes["/v1"] = ArtifactServer.body(GOOD_V1)
    control.desired = desired_for(
        GOOD_V1, server.url("/v1"), version="1.0.0", signature=trusted.sign(GOOD_V1)
    )
    await agent.step()
    server.routes["/a"] = ArtifactServer.body(CONTENT)
    for signature in (
        other.sign(CONTENT),
        trusted.sign(GOOD_V1),
        "not base64!",
        "AAAA",
    ):
        desired = desired_for(CONTENT, server.url("/a"), signature=signature)
        assert (
            await _refused(agent, control, state_dir, desired)
            == "signature_invalid: signature invalid"
        )


@pytest.mark.parametrize("require", [True, None])
async def test_unsigned_is_refused_when_signatures_required(
    make_agent, control, server, state_dir, require
):
    """Explicitly required, or implied by configured keys (the Mender rule)."""
    signer = Signer()
    agent = make_agent(verify_keys=signer.public_b64, require_signatures=require)
    server.routes["/v1"] = ArtifactServer.body(GOOD_V1)
    control.desired = desired_for(
        GOOD_V1, server.url("/v1"), version="1.0.0", signature=signer.sign(GOOD_V1)
    )
    await agent.step()
    server.routes["/a"] = ArtifactServer.body(CONTENT)
    desired = desired_for(CONTENT, server.url("/a"))
    assert (
        await _refused(agent, control, state_dir, desired)
        == "signature_invalid: unsigned artifact refused"
    )


@pytest.mark.parametrize(
    "artifact_id",
    ["../../escape", "../applied_version", "/etc/passwd", "a/../../x", "x\x00y"],
)
async def test_path_traversal_in_artifact_id_is_refused(
    make_agent, control, server, tmp_path, state_dir, artifact_id
):
    agent = make_agent()
    await _baseline(agent, control, server)
    server.routes["/a"] = ArtifactServer.body(CONTENT)
    await agent.step()
    before = snapshot(tmp_path)
    control.desired = desired_for(CONTENT, server.url("/a"), artifact_id=artifact_id)
    await agent.step()
    assert snapshot(tmp_path) == before  # nothing written anywhere under tmp_path
    assert server.hits.get("/a", 0) == 0
    await agent.step()
    assert (
        control.heartbeats[-1]["metrics"]["agent_error"]
        == "invalid desired state: artifact_id"
    )
    assert control.heartbeats[-1]["current_version"] == "1.0.0"


@pytest.mark.parametrize(
    "location",
    [
        "http://localhost:{port}/a",  # another host (same address, other name)
        "https://127.0.0.1:{port}/a",  # another scheme
        "http://127.0.0.1:1/a",  # another port
        "file:///etc/passwd",
    ],
)
async def test_redirect_off_origin_is_refused(
    make_agent, control, server, state_dir, location
):
    agent = make_agent()
    await _baseline(agent, control, server)
    server.routes["/r"] = ArtifactServer.redirect(location.format(port=server.port))
    server.routes["/a"] = ArtifactServer.body(CONTENT)
    reason = await _refused(
        agent, control, state_dir, desired_for(CONTENT, server.url("/r"))
    )
    assert reason == "download_failed: redirect refused"
    assert server.hits.get("/a", 0) == 0


async def test_same_origin_redirect_is_followed(make_agent, control, server, state_dir):
    agent = make_agent()
    await _baseline(agent, control, server)
    server.routes["/r"] = ArtifactServer.redirect("/a")
    server.routes["/a"] = ArtifactServer.body(CONTENT)
    control.desired = desired_for(CONTENT, server.url("/r"), version="2.0.0")
    await agent.step()
    assert (state_dir / "applied_version").read_text() == "2.0.0"


@pytest.mark.parametrize(
    "uri", ["file:///etc/passwd", "ftp://127.0.0.1/a", "http://user:pw@127.0.0.1/a"]
)
async def test_bad_uri_is_refused_before_connecting(
    make_agent, control, server, state_dir, uri
):
    agent = make_agent()
    await _baseline(agent, control, server)
    assert (
        await _refused(agent, control, state_dir, desired_for(CONTENT, uri))
        == "download_failed: uri refused"
    )


async def test_http_error_is_refused(make_agent, control, server, state_dir):
    agent = make_agent()
    await _baseline(agent, control, server)
    desired = desired_for(CONTENT, server.url("/missing"))
    assert (
        await _refused(agent, control, state_dir, desired)
        == "download_failed: download failed: HTTP 404"
    )


async def test_failed_artifact_is_not_retried_in_a_hot_loop(
    make_agent, control, server, state_dir, clock: FakeClock
):
    """A download that failed (not bytes that failed verification: those are
    never fetched again, see test_rejected_bytes) is retried with backoff."""
    agent = make_agent(apply_backoff=10.0)
    await _baseline(agent, control, server)
    control.desired = desired_for(CONTENT, server.url("/a"))  # 404 until fixed
    for _ in range(5):
        await agent.step()
    assert server.hits["/a"] == 1
    clock.now += 13  # past the first wait (10 s ± 20%)
    await agent.step()
    assert server.hits["/a"] == 2
    for _ in range(3):
        await agent.step()
    assert server.hits["/a"] == 2  # second wait doubles
    server.routes["/a"] = ArtifactServer.body(CONTENT)  # the host is fixed
    clock.now += 25
    await agent.step()
    assert server.hits["/a"] == 3
    assert (state_dir / "applied_version").read_text() == "2.0.0"


async def test_good_signed_artifact_is_applied(make_agent, control, server, state_dir):
    signer = Signer()
    agent = make_agent(verify_keys=f"{Signer().public_b64},{signer.public_b64}")
    server.routes["/a"] = ArtifactServer.body(CONTENT)
    desired = desired_for(
        CONTENT, server.url("/a"), version="3.1", signature=signer.sign(CONTENT)
    )
    control.desired = desired
    assert await agent.step() == 0.0
    aid = desired["artifact_id"]
    assert (state_dir / f"applied_{aid}").read_bytes() == CONTENT
    assert (state_dir / "applied_version").read_text() == "3.1"
    assert list((state_dir / "staging").iterdir()) == []
    await agent.step()
    report = control.heartbeats[-1]
    assert report["current_version"] == "3.1"
    assert report["current_artifact_id"] == aid
    assert report["last_apply"]["result"] == "ok"
    assert (
        hashlib.sha256((state_dir / f"applied_{aid}").read_bytes()).hexdigest()
        == (desired["sha256"])
    )
