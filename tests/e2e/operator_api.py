"""What an operator does through the REST API in the end-to-end tests (upload,
policies, rollouts, waiting for a status), and read-only looks at the database for
facts the API does not expose (which device was ever assigned to which wave).
"""

from __future__ import annotations

from typing import Any

import asyncpg
import httpx

from tests.support.control_plane import ControlPlane, run_async
from tests.support.processes import wait_until

__all__ = ["Operator", "query"]


def query(db_url: str, sql: str, *args: Any) -> list[dict[str, Any]]:
    """Rows of ``sql`` as dicts (runs on its own loop in a worker thread)."""

    async def go() -> list[dict[str, Any]]:
        conn = await asyncpg.connect(db_url)
        try:
            return [dict(r) for r in await conn.fetch(sql, *args)]
        finally:
            await conn.close()

    return run_async(go(), timeout=30)


class Operator:
    """The dev token's view of the API (every scope, the plane's tenant)."""

    def __init__(self, plane: ControlPlane) -> None:
        self.plane = plane
        self.http = httpx.Client(base_url=plane.api_url, headers=plane.auth, timeout=30)

    def close(self) -> None:
        self.http.close()

    def _ok(self, response: httpx.Response, *codes: int) -> Any:
        assert response.status_code in (codes or (200,)), (
            f"{response.request.method} {response.request.url}: "
            f"{response.status_code} {response.text}"
        )
        return response.json()

    def upload(self, content: bytes, version: str) -> dict[str, Any]:
        return dict(
            self._ok(
                self.http.post(
                    "/api/artifacts/upload",
                    params={"tenant": self.plane.tenant, "version": version},
                    content=content,
                    headers={"Content-Type": "application/octet-stream"},
                ),
                201,
            )
        )

    def register(self, uri: str, sha256: str, size: int, version: str) -> Any:
        body = {
            "tenant": self.plane.tenant,
            "uri": uri,
            "sha256": sha256,
            "size": size,
            "version": version,
        }
        return self._ok(self.http.post("/api/artifacts", json=body), 201)

    def policy(self, name: str, **fields: Any) -> Any:
        body = {"tenant": self.plane.tenant, "name": name, **fields}
        return self._ok(self.http.post("/api/policies", json=body), 201)

    def rollout(
        self,
        artifact_id: str,
        selector: dict[str, str] | str,
        *,
        waves: int,
        policy_id: str | None = None,
        name: str | None = None,
    ) -> Any:
        body = {
            "tenant": self.plane.tenant,
            "artifact_id": artifact_id,
            "selector": selector,
            "waves": waves,
            "policy_id": policy_id,
            "name": name,
        }
        return self._ok(self.http.post("/api/rollouts", json=body), 201)

    def start(self, rollout_id: str) -> Any:
        return self._ok(self.http.post(f"/api/rollouts/{rollout_id}:start"), 202)

    def retry(self, rollout_id: str) -> Any:
        return self._ok(self.http.post(f"/api/rollouts/{rollout_id}:retry"), 202)

    def get(self, rollout_id: str) -> Any:
        return self._ok(self.http.get(f"/api/rollouts/{rollout_id}"))

    def runs(self, rollout_id: str) -> list[dict[str, Any]]:
        return list(self._ok(self.http.get(f"/api/rollouts/{rollout_id}/runs")))

    def wait_status(
        self, rollout_id: str, *terminal: str, within: float = 45
    ) -> dict[str, Any]:
        """Poll until the rollout is in one of ``terminal``; fail on another
        terminal status at once, naming the reason."""
        seen: dict[str, Any] = {}

        def reached() -> None:
            seen.update(self.get(rollout_id))
            status = seen["status"]
            others = {"completed", "partial", "failed", "aborted"} - set(terminal)
            if status in others:
                raise RuntimeError(f"rollout ended {status}: {seen['reason']}")
            assert status in terminal, (
                f"{status} wave {seen['current_wave']}: {seen['reason']}"
            )

        wait_until(reached, within=within, every=0.2)
        return seen

    def targets(self, rollout_id: str) -> dict[str, dict[str, Any]]:
        rows = query(
            self.plane.db_url,
            "SELECT device_id, wave, state, assigned_at FROM rollout_targets "
            "WHERE rollout_id = $1::text::uuid",
            rollout_id,
        )
        return {r["device_id"]: r for r in rows}
