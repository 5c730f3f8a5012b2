"""The demo's script, spoken to the REST API like any client (synchronous).

Mint an operator token (to sign in to the UI) and a claim-only token for the
fleet, upload a good, a subtly bad and a bad release, create a policy that
requires healthy devices and tolerates no failure per wave, and a second one
that adds a telemetry analysis (the updated devices' error rate may exceed the
not-updated devices' by 0.02 at most), wait for the fleet, then run one 4-wave
rollout of each release and follow it with ``xdp47 rollouts watch``'s own
rendering (:func:`xdp47_cli.watch.watch`). The subtly bad release reports
healthy (``require_ok`` alone would pass it) with an error rate ten points
higher: the analysis stops it in wave 1.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from rich.console import Console

from xdp47_cli.client import ApiClient
from xdp47_cli.demo.fleet import FLEET_SELECTOR
from xdp47_cli.errors import CliError
from xdp47_cli.watch import watch
from xdp47_common.models.api_token import ALL_SCOPES, Scope
from xdp47_common.rollout.status import RolloutStatus

__all__ = [
    "ANALYSIS_CHECK",
    "BAD_VERSION",
    "GOOD_VERSION",
    "SUBTLE_VERSION",
    "Interrupted",
    "Outcome",
    "Prepared",
    "Scenario",
    "artifact_bytes",
]

GOOD_VERSION = "1.1.0"
BAD_VERSION = "2.0.0-bad"  # the demo app reports any version with "bad" failing
# Healthy, but its error rate is 0.10 higher (any version with "subtle").
SUBTLE_VERSION = "1.2.0-subtle"
ANALYSIS_CHECK = "error_rate: updated - baseline <= 0.02"
WAVES = 4
_ARTIFACT_BYTES = 64 * 1024


class Interrupted(Exception):
    """Ctrl-C while the script waited."""


def artifact_bytes(version: str) -> bytes:
    """Deterministic content for ``version``: a SHA256 hash chain."""
    block = hashlib.sha256(f"xdp47 demo release {version}".encode()).digest()
    out = bytearray()
    while len(out) < _ARTIFACT_BYTES:
        out += block
        block = hashlib.sha256(block).digest()
    return bytes(out[:_ARTIFACT_BYTES])


@dataclass(frozen=True)
class Prepared:
    operator_token: str
    claim_token: str
    releases: dict[str, UUID]
    policy_id: UUID
    analysis_policy_id: UUID


@dataclass(frozen=True)
class Outcome:
    """How a rollout ended: its status, reason and the wave it stopped in."""

    status: RolloutStatus
    reason: str | None
    wave: int | None


class Scenario:
    """The script for one tenant; ``client`` holds the dev token."""

    def __init__(
        self,
        client: ApiClient,
        tenant: str,
        *,
        out: Console,
        err: Console,
        stop: threading.Event,
    ) -> None:
        self._client = client
        self._tenant = tenant
        self._out = out
        self._err = err
        self._stop = stop

    def _sleep(self, seconds: float) -> None:
        if self._stop.wait(seconds):
            raise Interrupted

    def _mint(self, name: str, scopes: list[str]) -> str:
        created = self._client.post(
            "/api/tokens", {"name": name, "scopes": scopes, "tenant": self._tenant}
        )
        return str(created["token"])

    def _upload(self, version: str) -> UUID:
        response = self._client.request(
            "POST",
            "/api/artifacts/upload",
            params={
                "tenant": self._tenant,
                "version": version,
                "type": "demo",
                "filename": f"demo-{version}.bin",
            },
            content=artifact_bytes(version),
            headers={"Content-Type": "application/octet-stream"},
        )
        return UUID(response.json()["id"])

    def prepare(self) -> Prepared:
        """Tokens, both releases uploaded, and the demo policy."""
        operator = self._mint("demo operator", sorted(s.value for s in ALL_SCOPES))
        claim = self._mint("demo fleet", [Scope.DEVICES_CLAIM.value])
        releases = {
            v: self._upload(v) for v in (GOOD_VERSION, SUBTLE_VERSION, BAD_VERSION)
        }
        gates = {
            "tenant": self._tenant,
            "require_ok": True,
            "skip_offline": True,
            "grace_seconds": 1,
            "min_success_ratio": 1.0,
            "max_failures_per_wave": 0,
        }
        policy = self._client.post(
            "/api/policies", gates | {"name": "demo: healthy or stop"}
        )
        # Two devices a side: the smallest demo fleet has two per wave. A longer
        # grace than the plain policy's: each side counts once a device has
        # heartbeated in the wave's window, which on a busy machine takes more
        # than a second for the not-yet-updated devices.
        analysed = self._client.post(
            "/api/policies",
            gates
            | {
                "name": "demo: healthy and no more errors than the fleet",
                "grace_seconds": 5,
                "analysis": {"checks": [ANALYSIS_CHECK], "min_devices": 2},
            },
        )
        return Prepared(
            operator, claim, releases, UUID(policy["id"]), UUID(analysed["id"])
        )

    def wait_for_fleet(self, devices: int, timeout: float) -> None:
        """Until ``devices`` devices claimed and heartbeated."""
        deadline = time.monotonic() + timeout
        label = [f"{k}={v}" for k, v in FLEET_SELECTOR.items()]
        seen = 0
        while True:
            found: list[dict[str, Any]] = list(
                self._client.pages("/api/devices", params={"label": label})
            )
            seen = sum(1 for d in found if d.get("last_seen"))
            if seen >= devices:
                self._out.print(f"fleet: {seen} devices online", highlight=False)
                return
            if time.monotonic() > deadline:
                raise CliError(
                    f"only {seen} of {devices} devices came online in {timeout:g}s"
                )
            self._sleep(0.5)

    def rollout(
        self, version: str, prepared: Prepared, timeout: float, *, analysed: bool
    ) -> Outcome:
        """Create, start and watch a 4-wave rollout of ``version`` (under the
        analysis policy when ``analysed``)."""
        policy_id = prepared.analysis_policy_id if analysed else prepared.policy_id
        created = self._client.post(
            "/api/rollouts",
            {
                "tenant": self._tenant,
                "name": f"demo {version}",
                "artifact_id": str(prepared.releases[version]),
                "selector": FLEET_SELECTOR,
                "waves": WAVES,
                "policy_id": str(policy_id),
            },
        )
        rollout_id = UUID(created["id"])
        self._client.post(f"/api/rollouts/{rollout_id}:start")
        checked = f", analysis: {ANALYSIS_CHECK}" if analysed else ""
        self._out.print(
            f"\n[bold]rollout of {version}[/] ({rollout_id}), {WAVES} waves{checked}",
            highlight=False,
        )
        clock: Callable[[], float] = time.monotonic
        watch(
            self._client,
            rollout_id,
            timeout=timeout,
            interval=0.5,
            clock=clock,
            sleep=self._sleep,
            out=self._out,
            err=self._err,
        )
        ended = self._client.get(f"/api/rollouts/{rollout_id}")
        return Outcome(
            RolloutStatus(ended["status"]),
            ended.get("reason"),
            ended.get("current_wave"),
        )
