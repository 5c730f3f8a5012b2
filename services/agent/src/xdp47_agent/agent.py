"""One device agent: claim once, heartbeat with the whole state, apply what the
control plane asks for, report the outcome in the next heartbeat.

Everything that touches the outside (HTTP client, clock, sleep, metrics, random,
fault points) is injected, so one process can run thousands of agents on one
event loop and tests can drive ``step()`` one heartbeat at a time. The apply
itself is an ``Installer``: ``applying.fetch_and_commit`` in this process
(``applying.InProcess``, the default) or in a child process
(``installer.ChildInstaller``, the ``xdp47-agent`` process); the checks on a
desired state, the server's retry wait and the per-artifact backoff are
``desired_checks``.

The two retry regimes (server-directed tries, own backoff) are described in
``desired_checks``.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any
from uuid import UUID

from xdp47_agent.config import AgentConfig
from xdp47_agent.desired_checks import (
    ArtifactBackoff,
    TryKey,
    retry_wait,
    stale_reason,
)
from xdp47_agent.fsutil import FaultHook, no_fault
from xdp47_agent.http import Http
from xdp47_agent.identity import DeviceIdentity
from xdp47_agent.metrics import HttpMetrics, MetricsSource
from xdp47_agent.protocol import ControlClient, CredentialRejected
from xdp47_agent.rejected import VERIFICATION_CODES, Rejected, RejectedStore
from xdp47_agent.state import Applied, Identity, StateDir
from xdp47_agent.verify import ApplyRefused, refusal_for_os_error
from xdp47_agent.wire import (
    ApplyResult,
    DesiredState,
    HeartbeatBody,
    InvalidMessage,
    LastApply,
    utcnow,
)

if TYPE_CHECKING:
    import asyncio

    # applying (and what it imports) loads only when an agent applies in process.
    from xdp47_agent.applying import Installer

__all__ = ["Agent"]

log = logging.getLogger(__name__)

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]
_MAX_ERROR_BACKOFF = 300.0
_RETRY_MARGIN = 0.05


async def _asyncio_sleep(delay: float) -> None:
    import asyncio  # only agents on an event loop sleep this way

    await asyncio.sleep(delay)


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
        installer: applies an artifact; defaults to ``applying.InProcess``.
    """

    def __init__(
        self,
        config: AgentConfig,
        client: Http,
        *,
        clock: Clock = time.monotonic,
        sleep: Sleep | None = None,
        metrics: MetricsSource | None = None,
        rng: random.Random | None = None,
        fault: FaultHook = no_fault,
        installer: Installer | None = None,
    ) -> None:
        self.config = config
        self.state = StateDir(config.state_dir, fault=fault)
        self._client = client
        self._clock = clock
        self._sleep = sleep or _asyncio_sleep
        self._rng = rng or random.Random()
        self._fault = fault
        self._control = ControlClient(client, config, sleep=self._sleep, rng=self._rng)
        self._metrics = metrics or HttpMetrics(client, config.metrics_url)
        if installer is None:
            # Imported here: the download path (hashlib) is loaded only by a
            # process that installs in place.
            from xdp47_agent.applying import InProcess

            installer = InProcess(config, self.state, client, fault)
        self._install = installer
        self._opened = False
        self._identity = DeviceIdentity(config, self.state, self._control)
        self._current: Applied | None = None
        self._last_apply: LastApply | None = None
        self._agent_error: str | None = None
        self._backoff: dict[UUID, ArtifactBackoff] = {}
        # Per-device retries directed by the server: the last try made (each is
        # made once) and, while the server asks to wait, the seconds left.
        self._tried: TryKey | None = None
        self._retry_in: float | None = None
        self._rejects = RejectedStore(config.state_dir, fault=fault)
        self._rejected: Rejected | None = None
        self._logged_error: str | None = None
        self._errors = 0
        self._step_error: str | None = None
        self.last_body: HeartbeatBody | None = None
        self.last_desired: DesiredState | None = None

    # -- state ----------------------------------------------------------------

    @property
    def device_id(self) -> str | None:
        identity = self._identity.current
        return identity.device_id if identity else None

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
        identity = await self._identity.ensure()
        body = await self._heartbeat_body(identity)
        self.last_body = body
        try:
            raw = await self._control.heartbeat(
                identity.device_id, identity.credential, body, identity.ingest_url
            )
        except CredentialRejected:
            log.warning("credential of %s rejected; re-claiming", identity.device_id)
            identity = await self._identity.claim(identity.device_id)
            raw = await self._control.heartbeat(
                identity.device_id, identity.credential, body, identity.ingest_url
            )
        log.debug("heartbeat %d of %s answered", body.seq, identity.device_id)
        self._agent_error = None
        try:
            desired = DesiredState.from_json(raw)
        except InvalidMessage as exc:
            fields = ",".join(exc.fields)
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
        self._retry_in = None
        if desired.action == "update" and await self._reconcile(desired):
            return 0.0
        if self._agent_error is None:
            self._logged_error = None
        interval = self._interval(desired.heartbeat_interval)
        if self._retry_in is not None:
            # Wake for the retry rather than a heartbeat interval later; the
            # margin keeps the next answer's server_time past retry_after.
            return min(interval, self._retry_in + _RETRY_MARGIN)
        return interval

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
        stale = stale_reason(desired, self._current)
        if stale is not None:
            self._agent_error = f"desired state refused: {stale}"
            self._log_error("%s (artifact %s)", self._agent_error, aid)
            return False
        if self._rejected is not None:  # it matches: see _forget_unless_asked
            self._last_apply = self._rejected.failure
            log.debug("artifact %s not fetched again: its bytes were refused", aid)
            return False
        key = TryKey.of(desired)
        backoff = self._backoff.get(aid)
        if key is not None:
            # The server directs the tries (per-device retries): each once,
            # and not before its retry_after.
            if key == self._tried:
                return False
            wait = retry_wait(desired, utcnow())
            if wait > 0:
                self._retry_in = wait
                log.debug("try %d of %s in %.1fs", key.device_attempt, aid, wait)
                return False
        elif backoff is not None and self._clock() < backoff.not_before:
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
                rollout_id=desired.rollout_id,
                attempt=desired.attempt,
                device_attempt=desired.device_attempt,
            )
            if exc.code in VERIFICATION_CODES:
                self._rejected = Rejected.of(desired, self._last_apply)
                self._rejects.save(self._rejected)
            if key is not None:
                self._tried = key
            else:
                self._backoff[aid] = ArtifactBackoff.after(
                    backoff,
                    base=self.config.apply_backoff,
                    cap=self.config.apply_backoff_max,
                    now=self._clock(),
                    rng=self._rng,
                )
            return True
        self._backoff.pop(aid, None)
        assert self._current is not None
        self._last_apply = LastApply(
            artifact_id=aid,
            result=ApplyResult.OK,
            at=self._current.applied_at,
            rollout_id=desired.rollout_id,
            attempt=desired.attempt,
            device_attempt=desired.device_attempt,
        )
        log.info("applied %s (%s)", self._current.version, aid)
        return True

    async def _apply(self, desired: DesiredState, aid: UUID) -> None:
        try:
            applied = await self._install(
                desired, aid, identity=self._identity.current, current=self._current
            )
        except OSError as exc:
            self._reload_current()
            if self._current is not None and self._current.artifact_id == aid:
                return  # the failure came after the commit point: it is applied
            raise refusal_for_os_error(exc) from exc
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

    async def guarded_step(self) -> float:
        """``step``, with its failure logged and backed off: the seconds to
        wait before the next one."""
        delay: float
        try:
            delay = await self.step()
        except Exception as exc:
            self._errors += 1
            delay = min(
                self.config.heartbeat_interval * 2 ** min(self._errors, 10),
                _MAX_ERROR_BACKOFF,
            ) * self._rng.uniform(0.5, 1.0)
            # ERROR when a problem starts (or changes), DEBUG while it lasts.
            level = logging.DEBUG if str(exc) == self._step_error else logging.ERROR
            self._step_error = str(exc)
            log.log(level, "step failed (%s); next try in %.1fs", exc, delay)
            return delay
        if self._errors:
            log.info("steps succeed again after %d failed", self._errors)
        self._errors, self._step_error = 0, None
        return delay

    async def run(self, stop: asyncio.Event) -> None:
        """Heartbeat until ``stop`` is set, on an event loop (many agents in
        one process); the ``xdp47-agent`` process drives ``guarded_step``
        itself (``main``)."""
        from xdp47_agent.tasks import until_stopped

        self.open()
        while not stop.is_set():
            delay = await until_stopped(self.guarded_step(), stop)
            if delay is None or stop.is_set():
                break
            if delay > 0:
                await until_stopped(self._sleep_for(delay), stop)

    async def _sleep_for(self, delay: float) -> float:
        await self._sleep(delay)
        return 0.0
