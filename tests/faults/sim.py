"""A fleet of simulated devices in one asyncio task group, heartbeating through the
real ingest process.

Each device is claimed through the api (its own credential), then posts its whole
state every ``interval`` seconds with a growing ``seq``. When the answer says
``update`` to an artifact it does not run, the device "applies" it at once (the
next heartbeat reports the new version, health ok) or, for the devices chosen to
fail, reports a failed apply of it and never tries that artifact again.

The ledger the fault figures are computed from:

- ``acked_seq``: the highest ``seq`` that got a 202 (ingest says it is durable);
- ``told``: how many times the device's desired state *became* "update to X"
  (a device told to update twice would have a second entry);
- ``codes``: every HTTP answer by status, and whether each 503 had Retry-After.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx

__all__ = ["SimDevice", "SimFleet"]

# Cap on honouring Retry-After: the fleet must keep probing during a short outage.
RETRY_AFTER_CAP = 1.0
REPORT_DELAY = 0.05


@dataclass
class SimDevice:
    id: str
    fails: bool
    credential: str = ""
    seq: int = 0
    acked_seq: int = -1
    current_artifact_id: str | None = None
    current_version: str | None = "1.0.0"
    health: str = "ok"
    last_apply: dict[str, Any] | None = None
    desired: str | None = None  # artifact the last answer told it to run
    told: list[str] = field(default_factory=list)
    applied: list[str] = field(default_factory=list)
    given_up: set[str] = field(default_factory=set)

    def body(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "current_version": self.current_version,
            "current_artifact_id": self.current_artifact_id,
            "last_apply": self.last_apply,
            "health": self.health,
            "metrics": {"cpu": 0.1},
        }

    def answer(self, desired: dict[str, Any]) -> bool:
        """Act on the desired state of a 202 (level-triggered, like the agent);
        True when the device's state changed (it reports that at once)."""
        target = desired.get("artifact_id") if desired["action"] == "update" else None
        if target is not None and target != self.desired:
            self.told.append(target)
        self.desired = target
        if (
            target is None
            or target == self.current_artifact_id
            or target in self.given_up
        ):
            return False
        if self.fails:
            self.given_up.add(target)
            self.last_apply = {
                "artifact_id": target,
                "result": "failed",
                "reason": "simulated apply failure",
            }
            return True
        self.applied.append(target)
        self.current_artifact_id = target
        self.current_version = desired.get("version")
        self.health = "ok"
        self.last_apply = {"artifact_id": target, "result": "ok"}
        return True


class SimFleet:
    """``size`` simulated devices labelled ``fleet=<name>``; every ``fail_every``-th
    one (index % fail_every == 7) fails its applies."""

    def __init__(
        self,
        *,
        api_url: str,
        ingest_url: str,
        token: str,
        tenant: str,
        name: str,
        size: int,
        interval: float = 5.0,
        fail_every: int = 50,
        seed: int = 47,
    ) -> None:
        self.api_url = api_url
        self.ingest_url = ingest_url
        self.token = token
        self.tenant = tenant
        self.name = name
        self.interval = interval
        self.devices = [
            SimDevice(f"{name}-{n:04d}", fails=fail_every > 0 and n % fail_every == 7)
            for n in range(size)
        ]
        self.codes: Counter[int] = Counter()
        self.unavailable_without_retry_after = 0
        self.transport_errors = 0
        self._rng = random.Random(seed)
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        # One keep-alive connection per device, like a real fleet: a smaller pool
        # makes httpcore queue requests, which costs more CPU than the requests.
        limits = httpx.Limits(max_connections=size, max_keepalive_connections=size)
        self._http = httpx.AsyncClient(timeout=15, limits=limits)

    @property
    def label(self) -> dict[str, str]:
        return {"fleet": self.name}

    @property
    def failing(self) -> int:
        return sum(d.fails for d in self.devices)

    async def claim_all(self, concurrency: int = 16) -> None:
        gate = asyncio.Semaphore(concurrency)

        async def claim(device: SimDevice) -> None:
            body = {
                "tenant": self.tenant,
                "device_id": device.id,
                "labels": self.label,
            }
            async with gate:
                r = await self._http.post(
                    f"{self.api_url}/api/devices/claim",
                    json=body,
                    headers={"Authorization": f"Bearer {self.token}"},
                )
            assert r.status_code in (200, 201), r.text
            device.credential = r.json()["credential"]

        await asyncio.gather(*(claim(d) for d in self.devices))

    async def beat(self, device: SimDevice) -> float:
        """One heartbeat; returns how long to wait before the next one."""
        device.seq += 1
        try:
            r = await self._http.post(
                f"{self.ingest_url}/api/devices/{device.id}/heartbeat",
                json=device.body(),
                headers={"Authorization": f"Bearer {device.credential}"},
            )
        except httpx.TransportError:
            self.transport_errors += 1
            return self.interval
        self.codes[r.status_code] += 1
        if r.status_code == 202:
            device.acked_seq = max(device.acked_seq, device.seq)
            # Like the agent, report the outcome of an apply right away.
            return REPORT_DELAY if device.answer(r.json()) else self.interval
        if r.status_code == 503:
            retry_after = r.headers.get("retry-after")
            if retry_after is None:
                self.unavailable_without_retry_after += 1
                return self.interval
            return min(float(retry_after), RETRY_AFTER_CAP)
        return self.interval

    async def _loop(self, device: SimDevice) -> None:
        # Spread the fleet over the interval so the load is even.
        await asyncio.sleep(self._rng.uniform(0, self.interval))
        while not self._stop.is_set():
            wait = await self.beat(device)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), wait)

    def start(self) -> None:
        self._stop.clear()
        self._tasks = [
            asyncio.create_task(self._loop(d), name=f"sim:{d.id}") for d in self.devices
        ]

    async def stop(self) -> None:
        """Stop heartbeating; requests in flight finish (their answers count)."""
        self._stop.set()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    async def close(self) -> None:
        await self.stop()
        await self._http.aclose()

    # -- figures ---------------------------------------------------------------

    @property
    def accepted(self) -> int:
        return self.codes[202]

    @property
    def server_errors(self) -> int:
        return sum(n for code, n in self.codes.items() if code >= 500 and code != 503)

    def told_twice(self) -> list[str]:
        return [d.id for d in self.devices if len(d.told) != len(set(d.told))]

    def applied_twice(self) -> list[str]:
        return [d.id for d in self.devices if len(d.applied) != len(set(d.applied))]
