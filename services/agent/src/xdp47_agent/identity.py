"""Who this agent is: the device id and credential, kept in the state dir, and
the claim that obtains them (again after the control plane rejected the
credential)."""

from __future__ import annotations

import logging
from uuid import uuid4

from xdp47_agent.compat import claim_fingerprint
from xdp47_agent.config import AgentConfig
from xdp47_agent.protocol import ControlClient, heartbeat_base
from xdp47_agent.state import Identity, StateDir

__all__ = ["DeviceIdentity"]

log = logging.getLogger(__name__)


class DeviceIdentity:
    """The device's identity, loaded from the state dir or claimed once."""

    def __init__(
        self, config: AgentConfig, state: StateDir, control: ControlClient
    ) -> None:
        self._config = config
        self._state = state
        self._control = control
        self.current: Identity | None = None

    async def claim(self, device_id: str) -> Identity:
        """Claim ``device_id`` (idempotent on the server: a new credential)."""
        claimed = await self._control.claim(device_id)
        identity = Identity(
            device_id=claimed.device_id,
            credential=claimed.credential,
            ingest_url=claimed.ingest_url,
            claimed_as=claim_fingerprint(self._config),
        )
        self._state.save_identity(identity)
        self.current = identity
        log.info(
            "claimed device %s for tenant %s; heartbeats to %s",
            claimed.device_id,
            claimed.tenant,
            heartbeat_base(self._config, claimed.ingest_url)[0],
        )
        return identity

    async def ensure(self) -> Identity:
        """The identity, from memory, the state dir or a claim."""
        if self.current is not None:
            return self.current
        wanted = self._config.device_id
        stored = self._state.load_identity()
        if stored is not None and wanted in (None, stored.device_id):
            if stored.claimed_as == claim_fingerprint(self._config):
                self.current = stored
                return stored
            # Relabelled (or new properties): claim again, same id.
            return await self.claim(stored.device_id)
        device_id = wanted or self._state.load_device_id() or uuid4().hex
        # Persist the id before claiming: a crash mid-claim re-claims the same id
        # (idempotent on the server) instead of leaving an orphan device behind.
        if self._state.load_device_id() != device_id:
            self._state.save_device_id(device_id)
        return await self.claim(device_id)
