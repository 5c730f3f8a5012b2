"""What the browser tests do behind the browser's back: simulated devices that
claim through the API and heartbeat through ingest (so the real scheduler moves
the rollouts on), rows of another tenant, minted tokens. Database helpers run their
coroutine on a fresh event loop in a worker thread, and the devices heartbeat from
a thread of their own, because Playwright's sync API owns the test's thread."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Coroutine, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import asyncpg
import httpx

from tests.browser.conftest import LiveServer
from tests.support.processes import wait_until
from xdp47_api.repositories import PgTenantRepository, PgTokenRepository
from xdp47_common.adapters.pg import create_pool
from xdp47_common.models import Scope
from xdp47_common.tokens import SecretKind, display_prefix, hash_secret, new_secret

T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result(timeout=60)


async def _with_pool(
    server: LiveServer, sql: list[tuple[str, tuple[Any, ...]]]
) -> None:
    pool = await create_pool(server.db_url, min_size=1, max_size=2)
    try:
        async with pool.acquire() as conn, conn.transaction():
            for statement, args in sql:
                await conn.execute(statement, *args)
    finally:
        await pool.close()


def execute(server: LiveServer, *sql: tuple[str, tuple[Any, ...]]) -> None:
    run(_with_pool(server, list(sql)))


def rollout_id_by_name(server: LiveServer, name: str) -> uuid.UUID:
    async def go() -> uuid.UUID:
        conn = await asyncpg.connect(server.db_url)
        try:
            found = await conn.fetchval(
                "SELECT id FROM rollouts WHERE tenant = $1 AND name = $2",
                server.tenant,
                name,
            )
        finally:
            await conn.close()
        assert isinstance(found, uuid.UUID)
        return found

    return run(go())


def make_tenant_with_artifact(server: LiveServer, tenant: str, version: str) -> None:
    execute(
        server,
        ("INSERT INTO tenants (id, name) VALUES ($1, $1)", (tenant,)),
        (
            "INSERT INTO artifacts (id, tenant, uri, sha256, version) "
            "VALUES ($1, $2, 'https://x.example/b', $3, $4)",
            (uuid.uuid4(), tenant, "0" * 64, version),
        ),
    )


def mint(
    server: LiveServer, scopes: set[Scope], name: str = "browser-read-only"
) -> str:
    async def go() -> str:
        pool = await create_pool(server.db_url, min_size=1, max_size=2)
        try:
            if await PgTenantRepository(pool).get(server.tenant) is None:
                raise AssertionError("the dev tenant does not exist")
            secret = new_secret(SecretKind.API_TOKEN)
            await PgTokenRepository(pool).create(
                tenant=server.tenant,
                name=name,
                prefix=display_prefix(secret),
                token_hash=hash_secret(secret),
                scopes=sorted(scopes),
                created_by=None,
                expires_at=None,
            )
            return secret
        finally:
            await pool.close()

    return run(go())


def wave_members(server: LiveServer, rollout_id: uuid.UUID, wave: int) -> list[str]:
    """The devices the scheduler put in ``wave`` (written when the wave starts)."""

    async def go() -> list[str]:
        conn = await asyncpg.connect(server.db_url)
        try:
            rows = await conn.fetch(
                "SELECT device_id FROM rollout_targets WHERE rollout_id = $1 "
                "AND wave = $2 ORDER BY device_id",
                rollout_id,
                wave,
            )
        finally:
            await conn.close()
        return [r["device_id"] for r in rows]

    return run(go())


# What a simulated device does when its desired state says "update".
Behaviour = Literal["hold", "apply", "fail"]


@dataclass
class SimDevice:
    id: str
    credential: str
    behaviour: Behaviour = "hold"
    seq: int = 0
    artifact_id: str | None = None
    version: str | None = "1.0.0"
    last_apply: dict[str, Any] | None = None

    def body(self) -> dict[str, Any]:
        self.seq += 1
        return {
            "seq": self.seq,
            "current_version": self.version,
            "current_artifact_id": self.artifact_id,
            "last_apply": self.last_apply,
            "health": "ok",
            "metrics": {"cpu": 12.5, "error_rate": 0.0},
        }

    def react(self, desired: dict[str, Any]) -> None:
        if desired.get("action") != "update" or self.behaviour == "hold":
            return
        artifact = desired["artifact_id"]
        if self.behaviour == "apply":
            self.artifact_id, self.version = artifact, desired.get("version")
            self.last_apply = {"artifact_id": artifact, "result": "ok"}
        elif self.last_apply is None or self.last_apply["artifact_id"] != artifact:
            self.last_apply = {
                "artifact_id": artifact,
                "result": "failed",
                "code": "sha256_mismatch",
                "reason": "sha256 mismatch: got 5e5e",
            }


class SimFleet:
    """Devices claimed through the API that heartbeat through ingest every
    ``interval`` seconds from a background thread until ``stop``."""

    def __init__(self, server: LiveServer, interval: float = 0.2) -> None:
        self.server = server
        self.interval = interval
        self.devices: dict[str, SimDevice] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self.errors: list[str] = []

    def claim(self, ids: Iterable[str], labels: dict[str, str]) -> None:
        ids = list(ids)
        with httpx.Client(base_url=self.server.url, timeout=10) as client:
            for device_id in ids:
                r = client.post(
                    "/api/devices/claim",
                    headers={"Authorization": f"Bearer {self.server.token}"},
                    json={
                        "tenant": self.server.tenant,
                        "device_id": device_id,
                        "labels": labels,
                    },
                )
                assert r.status_code in (200, 201), r.text
                with self._lock:
                    self.devices[device_id] = SimDevice(
                        device_id, r.json()["credential"]
                    )
            if self._thread.is_alive():
                self._wait_online(client, ids)

    def _wait_online(self, client: httpx.Client, ids: list[str]) -> None:
        """Until the scheduler has stored a heartbeat of each device: one it has
        not heard from yet is skipped as offline when its wave starts."""
        auth = {"Authorization": f"Bearer {self.server.token}"}

        def online() -> None:
            for device_id in ids:
                r = client.get(f"/api/devices/{device_id}", headers=auth)
                assert r.status_code == 200, r.text
                assert r.json()["status"] == "online", r.json()

        wait_until(online, within=30)

    def behave(self, ids: Iterable[str], behaviour: Behaviour) -> None:
        with self._lock:
            for device_id in ids:
                self.devices[device_id].behaviour = behaviour

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _loop(self) -> None:
        with httpx.Client(base_url=self.server.ingest_url, timeout=10) as client:
            while not self._stop.is_set():
                with self._lock:
                    devices = list(self.devices.values())
                for device in devices:
                    self._beat(client, device)
                self._stop.wait(self.interval)

    def _beat(self, client: httpx.Client, device: SimDevice) -> None:
        with self._lock:
            body = device.body()
        try:
            r = client.post(
                f"/api/devices/{device.id}/heartbeat",
                json=body,
                headers={"Authorization": f"Bearer {device.credential}"},
            )
        except httpx.HTTPError as exc:
            self.errors.append(f"{device.id}: {exc!r}")
            return
        if r.status_code != 202:
            self.errors.append(f"{device.id}: {r.status_code} {r.text}")
            return
        with self._lock:
            device.react(r.json())


def api_client(server: LiveServer) -> httpx.Client:
    """An HTTP client of the live server's API with the dev token."""
    return httpx.Client(
        base_url=server.url,
        headers={"Authorization": f"Bearer {server.token}"},
        timeout=10,
    )
