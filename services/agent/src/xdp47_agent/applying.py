"""Fetching and committing one artifact: download to the staging file with the
size bound, check the SHA256 and the signature, then commit it into the state
dir (atomic rename). A refused or failed apply leaves no staging file behind."""

from __future__ import annotations

import logging
from typing import Protocol
from uuid import UUID

from xdp47_agent.compat import compact, is_compatible
from xdp47_agent.config import AgentConfig
from xdp47_agent.desired_checks import downgrade_reason, issued_at, valid_version
from xdp47_agent.download import DownloadLimits, download, limits_of
from xdp47_agent.fsutil import FaultHook
from xdp47_agent.http import Http
from xdp47_agent.protocol import heartbeat_base
from xdp47_agent.state import Applied, Identity, StateDir, artifact_name
from xdp47_agent.verify import ApplyRefused, Reason, check_signature
from xdp47_agent.wire import DesiredState, utcnow

__all__ = ["InProcess", "Installer", "fetch_and_commit"]

log = logging.getLogger(__name__)


class Installer(Protocol):
    """Fetch, verify and commit ``desired`` (``applying.fetch_and_commit``).

    Raises:
        ApplyRefused: the bytes or the desired state were refused.
        OSError: writing the state dir failed.
    """

    async def __call__(
        self,
        desired: DesiredState,
        aid: UUID,
        *,
        identity: Identity | None,
        current: Applied | None,
    ) -> Applied: ...


async def fetch_and_commit(
    desired: DesiredState,
    aid: UUID,
    *,
    config: AgentConfig,
    state: StateDir,
    client: Http,
    limits: DownloadLimits,
    fault: FaultHook,
    identity: Identity | None,
    current: Applied | None = None,
) -> Applied:
    """Apply ``desired`` (whose artifact is ``aid``) and return what is applied.

    A version lower than ``current``'s is refused unless the desired state is a
    rollback (``desired_checks.downgrade_reason``). The bytes come from the
    previous slot when it holds ``aid`` with the desired SHA256 (a rollback to
    the artifact applied before), else from a download; either way they are
    checked against the SHA256 and the signature before the commit.

    Raises:
        ApplyRefused: the bytes or the desired state were refused (with the code).
        OSError: writing the state dir failed; the caller decides whether the
            failure came after the commit point.
    """
    assert desired.uri is not None
    assert desired.sha256 is not None
    if not is_compatible(desired.compatible, config.device_properties):
        # Whatever the server says: an artifact built for other hardware is
        # never downloaded, let alone applied.
        raise ApplyRefused(
            Reason.INCOMPATIBLE,
            f"declared {compact(desired.compatible)}, device is "
            f"{compact(config.device_properties)}",
        )
    downgrade = downgrade_reason(desired, current)
    if downgrade is not None:
        raise ApplyRefused(Reason.DOWNGRADE, downgrade)
    artifact_name(aid)  # a UUID can only be canonical; keep the guard explicit
    expected = desired.sha256.strip().lower()
    if len(expected) != 64 or any(c not in "0123456789abcdef" for c in expected):
        raise ApplyRefused(Reason.SHA256_MISMATCH, "desired sha256 is not hex")
    version = desired.version or str(aid)
    if not valid_version(version):
        raise ApplyRefused(Reason.IO_ERROR, "version is not printable text")
    staged = state.staging_path(aid)
    try:
        if state.previous.take(aid, expected, staged):
            digest = bytes.fromhex(expected)  # hashed by ``take``
            log.info("artifact %s taken from the previous slot: no download", aid)
        else:
            digest = await download(
                client,
                desired.uri,
                staged,
                size=desired.size,
                limits=limits,
                fault=fault,
                credential=identity.credential if identity else None,
                trusted_origins=(
                    config.control_url,
                    heartbeat_base(config, identity.ingest_url if identity else None)[
                        0
                    ],
                ),
            )
        if digest.hex() != expected:
            raise ApplyRefused(Reason.SHA256_MISMATCH, f"got {digest.hex()}")
        check_signature(
            digest,
            desired.signature,
            config.verify_keys,
            required=config.signatures_required,
        )
        fault("verified")
        applied = Applied(
            aid, version, expected, utcnow(), issued_at(desired.server_time)
        )
        state.commit(applied, staged)
    except (OSError, ApplyRefused):
        # A failed write/fsync/rename: put the dir back to old-or-new and
        # report; never retry an fsync in place (its error is not sticky).
        state.discard_staging(aid)
        raise
    return applied


class InProcess:
    """``Agent``'s installer for agents on an event loop (many in one process,
    tests with fault points): ``fetch_and_commit`` in this process."""

    def __init__(
        self, config: AgentConfig, state: StateDir, client: Http, fault: FaultHook
    ) -> None:
        self._config = config
        self._state = state
        self._client = client
        self._fault = fault
        self._limits = limits_of(config)

    async def __call__(
        self,
        desired: DesiredState,
        aid: UUID,
        *,
        identity: Identity | None,
        current: Applied | None,
    ) -> Applied:
        return await fetch_and_commit(
            desired,
            aid,
            config=self._config,
            state=self._state,
            client=self._client,
            limits=self._limits,
            fault=self._fault,
            identity=identity,
            current=current,
        )
