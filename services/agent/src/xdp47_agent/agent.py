"""One device agent: claim once, heartbeat with the whole state, apply what the
control plane asks for, report the outcome in the next heartbeat.

Everything that touches the outside (HTTP client, clock, sleep, metrics, random,
fault points) is injected, so one process can run thousands of agents on one
event loop and tests can drive ``step()`` one heartbeat at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

import httpx
from pydantic import ValidationError

from xdp47_agent.compat import claim_fingerprint, compact, is_compatible
from xdp47_agent.config import AgentConfig
from xdp47_agent.download import DownloadLimits, download
from xdp47_agent.fsutil import FaultHook, no_fault
from xdp47_agent.metrics import HttpMetrics, MetricsSource
from xdp47_agent.protocol import ControlClient, CredentialRejected, heartbeat_base
from xdp47_agent.rejected import VERIFICATION_CODES, Rejected, RejectedStore
from xdp47_agent.state import Applied, Identity, StateDir, artifact_name
from xdp47_agent.verify import (
    ApplyRefused,
    Reason,
    check_signature,
    refusal_for_os_error,
)
from xdp47_common.clock import utcnow
from xdp47_common.messages import DesiredState, HeartbeatBody
from xdp47_common.models import ApplyResult, LastApply

__all__ = ["Agent"]

log = logging.getLogger(__name__)

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]
_MAX_ERROR_BACKOFF = 300.0


@dataclass
class _ArtifactBackoff:
    failures: int
    not_before: float


def _valid_version(version: str) -> bool:
    return 0 < len(version) <= 128 and version.isprintable()


def _issued_at(when: datetime | None) -> datetime | None:
    """``server_time`` as an aware datetime (a naive one is taken as UTC)."""
    if when is None or when.tzinfo is not None:
        return when
    return when.replace(tzinfo=UTC)


def _stale(desired: DesiredState, current: Applied | None) -> str | None:
    """Why ``desired`` is older than the state already applied, or None.

    The high-water mark is the ``server_time`` of the desired state the applied
    artifact came from. An update answer issued before it is a replay (an old
    answer served again), refused. A rollback by the operator is a new rollout
    of an older artifact: its answers are issued now, so they pass. Once a mark
    exists, an update without ``server_time`` cannot be ordered and is refused.
    """
    mark = current.desired_at if current is not None else None
    if mark is None:
        return None
    issued = _issued_at(desired.server_time)
    if issued is None:
        return "update without server_time after a dated apply"
    if issued < mark:
        return "older than the applied desired state (replay)"
    return None


class Agent:
    """A device agent bound to one config, state dir and shared HTTP client.

    Args:
        config: this device's configuration.
        client: a shared keep-alive client; the caller owns and closes it.
        clock: monotonic seconds, for per-artifact backoff.
        sleep: awaited for every wait (retries, heartbeat interval).
        metrics: where samples come from; defaults to ``config.metrics_url``.
        rng: jitter source.
        fault: called at named points of the apply path (crash tests).
    """

    def __init__(
        self,
        config: AgentConfig,
        client: httpx.AsyncClient,
        *,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
        metrics: MetricsSource | None = None,
        rng: random.Random | None = None,
        fault: FaultHook = no_fault,
    ) -> None:
        self.config = config
        self.state = StateDir(config.state_dir, fault=fault)
        self._client = client
        self._clock = clock
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._fault = fault
        self._control = ControlClient(client, config, sleep=sleep)
        self._metrics = metrics or HttpMetrics(client, config.metrics_url)
        self._limits = DownloadLimits(
            max_bytes=config.max_artifact_bytes,
            stall_timeout=config.download_stall_timeout,
            deadline=config.download_timeout,
            connect_timeout=config.request_timeout,
        )
        self._opened = False
        self._identity: Identity | None = None
        self._current: Applied | None = None
        self._last_apply: LastApply | None = None
        self._agent_error: str | None = None
        self._backoff: dict[UUID, _ArtifactBackoff] = {}
        self._rejects = RejectedStore(config.state_dir, fault=fault)
        self._rejected: Rejected | None = None
        self._logged_error: str | None = None
        self._errors = 0
        self.last_body: HeartbeatBody | None = None
        self.last_desired: DesiredState | None = None

    # -- state ----------------------------------------------------------------

    @property
    def device_id(self) -> str | None:
        return self._identity.device_id if self._identity else None

    @property
    def current(self) -> Applied | None:
        return self._current

    def open(self) -> None:
        """Recover the state dir (once); ``step`` and ``run`` call it."""
        if self._opened:
            return
        self._current = self.state.recover()
        if self._current is not None:
            # Level-triggered: after a restart the applied artifact is reported
            # as a success, which is exactly what the last commit was.
            self._last_apply = LastApply(
                artifact_id=self._current.artifact_id,
                result=ApplyResult.OK,
                at=self._current.applied_at,
            )
        if self._rejected is None:
            self._rejected = self._rejects.load()
            if self._rejected is not None:
                # The refusal is still the latest word on that desired state:
                # report it again rather than fetch the same bad bytes.
                self._last_apply = self._rejected.failure
        self._opened = True

    async def _claim(self, device_id: str) -> Identity:
        claimed = await self._control.claim(device_id)
        identity = Identity(
            device_id=claimed.device_id,
            credential=claimed.credential,
            ingest_url=claimed.ingest_url,
            claimed_as=claim_fingerprint(self.config),
        )
        self.state.save_identity(identity)
        self._identity = identity
        log.info(
            "claimed device %s for tenant %s; heartbeats to %s",
            claimed.device_id,
            claimed.tenant,
            heartbeat_base(self.config, claimed.ingest_url)[0],
        )
        return identity

    async def _ensure_identity(self) -> Identity:
        if self._identity is not None:
            return self._identity
        wanted = self.config.device_id
        stored = self.state.load_identity()
        if stored is not None and wanted in (None, stored.device_id):
            if stored.claimed_as == claim_fingerprint(self.config):
                self._identity = stored
                return stored
            # Relabelled (or new properties): claim again, same id.
            return await self._claim(stored.device_id)
        device_id = wanted or self.state.load_device_id() or uuid4().hex
        # Persist the id before claiming: a crash mid-claim re-claims the same id
        # (idempotent on the server) instead of leaving an orphan device behind.
        if self.state.load_device_id() != device_id:
            self.state.save_device_id(device_id)
        return await self._claim(device_id)

    # -- one heartbeat --------------------------------------------------------

    async def _heartbeat_body(self, identity: Identity) -> HeartbeatBody:
        seq = self.state.next_seq()
        sample = await self._metrics.sample(identity.device_id, seq)
        metrics: dict[str, Any] = dict(sample.metrics)
        if self._agent_error is not None:
            metrics["agent_error"] = self._agent_error
        return HeartbeatBody(
            seq=seq,
            current_version=self._current.version if self._current else None,
            current_artifact_id=self._current.artifact_id if self._current else None,
            last_apply=self._last_apply,
            health=sample.health,
            metrics=metrics,
        )

    async def step(self) -> float:
        """One heartbeat and, when asked, one apply attempt.

        Returns:
            Seconds to wait before the next step: 0 after an apply attempt, so
            its outcome is reported at once.
        """
        self.open()
        identity = await self._ensure_identity()
        body = await self._heartbeat_body(identity)
        self.last_body = body
        try:
            raw = await self._control.heartbeat(
                identity.device_id, identity.credential, body, identity.ingest_url
            )
        except CredentialRejected:
            log.warning("credential of %s rejected; re-claiming", identity.device_id)
            identity = await self._claim(identity.device_id)
            raw = await self._control.heartbeat(
                identity.device_id, identity.credential, body, identity.ingest_url
            )
        log.debug("heartbeat %d of %s answered", body.seq, identity.device_id)
        self._agent_error = None
        try:
            desired = DesiredState.model_validate(raw)
        except ValidationError as exc:
            fields = ",".join(str(e["loc"][0]) for e in exc.errors() if e["loc"])
            self._agent_error = f"invalid desired state: {fields or 'body'}"
            self._log_error("%s: %s", self._agent_error, exc)
            return self._interval(None)
        if desired.device_id is not None and desired.device_id != identity.device_id:
            # An answer meant for another device (a mix-up or a replay): acting on
            # it would install another device's assignment.
            self._agent_error = "desired state refused: for another device"
            self._log_error("%s: %r", self._agent_error, desired.device_id[:130])
            return self._interval(None)
        self.last_desired = desired
        self._forget_unless_asked(desired)
        if desired.action == "update" and await self._reconcile(desired):
            return 0.0
        if self._agent_error is None:
            self._logged_error = None
        return self._interval(desired.heartbeat_interval)

    def _log_error(self, message: str, *args: object) -> None:
        """Log a problem at ERROR when it starts, at DEBUG while it lasts: a
        problem that persists would otherwise write a line every heartbeat."""
        level = (
            logging.DEBUG if self._agent_error == self._logged_error else logging.ERROR
        )
        self._logged_error = self._agent_error
        log.log(level, message, *args)

    def _forget_unless_asked(self, desired: DesiredState) -> None:
        """Drop the refused artifact once the desired state names anything else
        (another artifact, other bytes, another rollout, or nothing): then the
        same artifact, asked for again, is a new order and is fetched again."""
        if self._rejected is None or (
            desired.action == "update" and self._rejected.matches(desired)
        ):
            return
        log.info(
            "desired state changed; artifact %s may be fetched again",
            self._rejected.artifact_id,
        )
        self._rejected = None
        self._rejects.clear()

    def _interval(self, asked: float | None) -> float:
        base = asked if asked is not None and 0 < asked <= 86_400 else None
        base = base or self.config.heartbeat_interval
        # ±10% so a fleet started together does not heartbeat in lockstep.
        return base * self._rng.uniform(0.9, 1.1)

    # -- apply ----------------------------------------------------------------

    async def _reconcile(self, desired: DesiredState) -> bool:
        """Apply ``desired`` unless applied or backing off; True when attempted."""
        aid = desired.artifact_id
        if aid is None or not desired.uri or not desired.sha256:
            self._agent_error = "invalid desired state: update without artifact"
            return False
        if self._current is not None and self._current.artifact_id == aid:
            return False
        stale = _stale(desired, self._current)
        if stale is not None:
            self._agent_error = f"desired state refused: {stale}"
            self._log_error("%s (artifact %s)", self._agent_error, aid)
            return False
        if self._rejected is not None:  # it matches: see _forget_unless_asked
            self._last_apply = self._rejected.failure
            log.debug("artifact %s not fetched again: its bytes were refused", aid)
            return False
        backoff = self._backoff.get(aid)
        if backoff is not None and self._clock() < backoff.not_before:
            return False
        try:
            await self._apply(desired, aid)
        except ApplyRefused as exc:
            log.warning("artifact %s refused: %s", aid, exc)
            self._last_apply = LastApply(
                artifact_id=aid,
                result=ApplyResult.FAILED,
                code=exc.code.value,
                reason=exc.message,
                at=utcnow(),
            )
            if exc.code in VERIFICATION_CODES:
                self._rejected = Rejected.of(desired, self._last_apply)
                self._rejects.save(self._rejected)
            failures = (backoff.failures if backoff else 0) + 1
            delay = min(
                self.config.apply_backoff * 2 ** (failures - 1),
                self.config.apply_backoff_max,
            )
            self._backoff[aid] = _ArtifactBackoff(
                failures, self._clock() + delay * self._rng.uniform(0.8, 1.2)
            )
            return True
        self._backoff.pop(aid, None)
        assert self._current is not None
        self._last_apply = LastApply(
            artifact_id=aid, result=ApplyResult.OK, at=self._current.applied_at
        )
        log.info("applied %s (%s)", self._current.version, aid)
        return True

    async def _apply(self, desired: DesiredState, aid: UUID) -> None:
        assert desired.uri is not None
        assert desired.sha256 is not None
        if not is_compatible(desired.compatible, self.config.device_properties):
            # Whatever the server says: an artifact built for other hardware
            # is never downloaded, let alone applied.
            raise ApplyRefused(
                Reason.INCOMPATIBLE,
                f"declared {compact(desired.compatible)}, device is "
                f"{compact(self.config.device_properties)}",
            )
        artifact_name(aid)  # a UUID can only be canonical; keep the guard explicit
        expected = desired.sha256.strip().lower()
        if len(expected) != 64 or any(c not in "0123456789abcdef" for c in expected):
            raise ApplyRefused(Reason.SHA256_MISMATCH, "desired sha256 is not hex")
        version = desired.version or str(aid)
        if not _valid_version(version):
            raise ApplyRefused(Reason.IO_ERROR, "version is not printable text")
        staged = self.state.staging_path(aid)
        try:
            digest = await download(
                self._client,
                desired.uri,
                staged,
                size=desired.size,
                limits=self._limits,
                fault=self._fault,
                credential=self._identity.credential if self._identity else None,
                trusted_origins=(
                    self.config.control_url,
                    heartbeat_base(
                        self.config,
                        self._identity.ingest_url if self._identity else None,
                    )[0],
                ),
            )
            if digest.hex() != expected:
                raise ApplyRefused(Reason.SHA256_MISMATCH, f"got {digest.hex()}")
            check_signature(
                digest,
                desired.signature,
                self.config.verify_keys,
                required=self.config.signatures_required,
            )
            self._fault("verified")
            applied = Applied(
                aid, version, expected, utcnow(), _issued_at(desired.server_time)
            )
            self.state.commit(applied, staged)
        except OSError as exc:
            # A failed write/fsync/rename: put the dir back to old-or-new and
            # report; never retry an fsync in place (its error is not sticky).
            self.state.discard_staging(aid)
            self._reload_current()
            if self._current is not None and self._current.artifact_id == aid:
                return  # the failure came after the commit point: it is applied
            raise refusal_for_os_error(exc) from exc
        except ApplyRefused:
            self.state.discard_staging(aid)
            raise
        self._current = applied

    def _reload_current(self) -> None:
        """Read the applied state again after a failed write. A dir that cannot
        be written cannot be recovered either: then the applied state is what
        ``current.json`` says (``recover`` repairs the rest once it can)."""
        self._opened = False
        try:
            self.open()
        except OSError as exc:
            log.warning("state dir not recovered after a failed apply: %s", exc)
            self._current = self.state.load_current()
            self._opened = True

    # -- loop -----------------------------------------------------------------

    async def _until_stopped(
        self, work: Awaitable[float], stop: asyncio.Event
    ) -> float | None:
        """Run ``work`` unless ``stop`` is set first; then abandon it (safe: the
        commit has no await inside, so a cancel lands in I/O, never mid-commit)."""
        task = asyncio.ensure_future(work)
        stopper = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopper.cancel()
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        return None if task.cancelled() else task.result()

    async def run(self, stop: asyncio.Event) -> None:
        """Heartbeat until ``stop`` is set; errors are logged and backed off."""
        self.open()
        while not stop.is_set():
            try:
                delay = await self._until_stopped(self.step(), stop)
                self._errors = 0
            except Exception as exc:
                self._errors += 1
                delay = min(
                    self.config.heartbeat_interval * 2 ** min(self._errors, 10),
                    _MAX_ERROR_BACKOFF,
                ) * self._rng.uniform(0.5, 1.0)
                log.error("step failed (%s); next try in %.1fs", exc, delay)
            if delay is None or stop.is_set():
                break
            if delay > 0:
                await self._until_stopped(self._sleep_for(delay), stop)

    async def _sleep_for(self, delay: float) -> float:
        await self._sleep(delay)
        return 0.0
