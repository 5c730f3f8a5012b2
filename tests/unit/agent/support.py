"""Test doubles for the agent: a fake control plane (an httpx transport that
passes other hosts through to the network) and a raw-socket artifact server on
127.0.0.1 that can misbehave (stall, stream forever, redirect, lie)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from xdp47_agent.config import AgentConfig

CONTROL = "http://control.test"
INGEST = "http://ingest.test"


def snapshot(root: Path) -> dict[str, str]:
    """Every file under ``root`` (relative path → SHA256): "state unchanged".

    ``rejected.json`` is left out: remembering refused bytes is the refusal's
    record, not a change of the applied state."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != "rejected.json"
    }


def make_config(state_dir: Path, **overrides: Any) -> AgentConfig:
    values: dict[str, Any] = {
        "control_url": CONTROL,
        "tenant": "acme",
        "device_labels": "site=berlin,model=k2",
        "agent_token": "claim-token",
        "state_dir": state_dir,
        "heartbeat_interval": 1.0,
        # Generous, so a good download on a loaded machine never trips them;
        # the tests of a stall or a deadline set their own.
        "download_stall_timeout": 5.0,
        "download_timeout": 10.0,
        "max_artifact_bytes": 1 << 20,
        "request_timeout": 2.0,
    }
    values.update(overrides)
    return AgentConfig.of(**values)


class Sleeps:
    """An injected sleep that records the delays and returns at once."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)
        await asyncio.sleep(0)


@dataclass
class Signer:
    key: Ed25519PrivateKey = field(default_factory=Ed25519PrivateKey.generate)

    @property
    def public_b64(self) -> str:
        return base64.b64encode(self.key.public_key().public_bytes_raw()).decode()

    def sign(self, content: bytes) -> str:
        return base64.b64encode(
            self.key.sign(hashlib.sha256(content).digest())
        ).decode()


def desired_for(
    content: bytes,
    uri: str,
    *,
    version: str = "2.0.0",
    artifact_id: str | None = None,
    signature: str | None = None,
    size: int | str | None = "auto",
) -> dict[str, Any]:
    return {
        "action": "update",
        "artifact_id": artifact_id or str(uuid.uuid4()),
        "version": version,
        "uri": uri,
        "sha256": hashlib.sha256(content).hexdigest(),
        "size": len(content) if size == "auto" else size,
        "signature": signature,
        "rollout_id": str(uuid.uuid4()),
        "attempt": 1,
    }


class FakeControlPlane(httpx.AsyncBaseTransport):
    """Claim and heartbeat on ``control.test`` (heartbeats on ``ingest.test`` too);
    any other host goes to the network. ``ingest_url`` is announced in claim
    answers; ``ingest_only`` makes ``control.test`` answer heartbeats with 404,
    like an api without a gateway in front."""

    def __init__(self) -> None:
        self._net = httpx.AsyncHTTPTransport()
        self.claims: list[dict[str, Any]] = []
        self.heartbeats: list[dict[str, Any]] = []
        self.credentials: dict[str, str] = {}
        self.desired: dict[str, Any] = {"action": "none"}
        self.fail_next: list[tuple[int, dict[str, str]]] = []  # (status, headers)
        self.artifacts: dict[str, bytes] = {}  # path → content, served here too
        self.ingest_url: str | None = None
        self.ingest_only = False
        self.heartbeat_hosts: list[str] = []

    def revoke(self, device_id: str) -> None:
        self.credentials[device_id] = "revoked"

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.host not in ("control.test", "ingest.test"):
            return await self._net.handle_async_request(request)
        if request.url.path in self.artifacts:
            return httpx.Response(200, content=self.artifacts[request.url.path])
        if self.fail_next:
            status, headers = self.fail_next.pop(0)
            return httpx.Response(status, headers=headers, json={"detail": "busy"})
        auth = request.headers.get("authorization", "")
        if request.url.path == "/api/devices/claim":
            if auth != "Bearer claim-token":
                return httpx.Response(401, json={"detail": "bad token"})
            body = json.loads(request.content)
            self.claims.append(body)
            device_id = body.get("device_id") or uuid.uuid4().hex
            credential = f"cred-{device_id}-{len(self.claims)}"
            self.credentials[device_id] = credential
            return httpx.Response(
                201,
                json={
                    "device_id": device_id,
                    "tenant": body["tenant"],
                    "credential": credential,
                    "ingest_url": self.ingest_url,
                },
            )
        parts = request.url.path.split("/")
        if (
            len(parts) == 5
            and parts[1:3] == ["api", "devices"]
            and parts[4] == "heartbeat"
            and not (self.ingest_only and request.url.host == "control.test")
        ):
            if auth != f"Bearer {self.credentials.get(parts[3])}":
                return httpx.Response(401, json={"detail": "bad credential"})
            self.heartbeats.append(json.loads(request.content))
            self.heartbeat_hosts.append(request.url.host)
            return httpx.Response(202, json=self.desired)
        return httpx.Response(404, json={"detail": "no route"})

    async def aclose(self) -> None:
        await self._net.aclose()


Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class ArtifactServer:
    """A raw HTTP/1.1 server on 127.0.0.1 whose routes write whatever they like."""

    def __init__(self) -> None:
        self.routes: dict[str, Handler] = {}
        self.hits: dict[str, int] = {}
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.port = 0

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    async def _serve(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            line = await reader.readline()
            while (await reader.readline()) not in (b"\r\n", b""):
                pass
            path = line.split()[1].decode() if line else ""
            self.hits[path] = self.hits.get(path, 0) + 1
            handler = self.routes.get(path)
            if handler is None:
                writer.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
            else:
                await handler(reader, writer)
            await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()
            self._tasks.discard(task)

    # -- route factories --------------------------------------------------------

    @staticmethod
    def body(content: bytes, *, length: int | None = None) -> Handler:
        async def handler(_: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            n = len(content) if length is None else length
            w.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % n + content)

        return handler

    @staticmethod
    def endless(chunk: bytes = b"x" * 4096) -> Handler:
        async def handler(_: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            w.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n")
            while True:
                w.write(chunk)
                await w.drain()

        return handler

    @staticmethod
    def stall(prefix: bytes, length: int) -> Handler:
        async def handler(_: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            w.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % length + prefix)
            await w.drain()
            await asyncio.Event().wait()  # never another byte

        return handler

    @staticmethod
    def redirect(location: str) -> Handler:
        async def handler(_: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            w.write(
                b"HTTP/1.1 302 Found\r\nLocation: %s\r\nContent-Length: 0\r\n\r\n"
                % location.encode()
            )

        return handler
