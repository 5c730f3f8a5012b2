"""Identity and desired state per credential, in memory, invalidated by PostgreSQL.

Every heartbeat and poll needs to know whose credential it carries and what that
device should run (``read_device``: one indexed query, ~60 µs of ingest's CPU and
~85 µs of PostgreSQL's). Both change rarely: a credential when a device is
(re)claimed, the desired state when a rollout starts, advances, ends or is
retried. So each ingest replica keeps the answer per credential hash and drops it
the moment it may be wrong:

- **NOTIFY**: migration 0008's triggers send ``NOTIFY xdp47_desired '<tenant>'``
  in the transaction of every change that alters what that tenant's devices are
  answered (rollout status / wave / attempt, a credential, a cleared kept
  desired state, an artifact). NOTIFY is delivered with the commit, never for a
  rollback, and needs no code path to remember it. One LISTEN connection per
  replica hears it and invalidates that tenant's entries (a counter per tenant,
  checked on every hit).
- **A wave start** (and a draft's start) changes the answer of that wave's
  devices only: its notification (migration 0027) names the rollout and the
  waves, and the replica reads those devices' credentials
  (``pg.wave_credentials``, one query) and drops just their entries. Until
  that read is done, the tenant's answers are read from the database (and
  kept: they are newer than the change); if it fails, the whole tenant is
  dropped as for any other change. A million-device tenant no longer rereads
  every device at every wave. A late joiner of the running wave is the same
  drop of that wave's late targets only (``xdp47_ingest.notices``).
- **No listener, no cache**: while the LISTEN connection is down (database
  restart, network), nothing is served from memory and every request reads the
  database, as without the cache; on reconnect everything cached before is
  dropped. A stuck connection is found by a ``SELECT 1`` every few seconds.
- **A read that overlaps a notification is not kept**: its result may predate
  the change.
- **TTL** (``XDP47_INGEST_CACHE_TTL_S``) bounds the life of an entry whatever
  happens, and ``XDP47_INGEST_CACHE_SIZE`` their number; either at 0 turns the
  cache off.

**Memory.** A replica keeps one entry per device it serves, so an entry is
kept small (``bench/cache_memory.py`` measures it: ~1 KB per device before this
layout, ~195 bytes with it; a million devices fit ingest's 600 MiB budget), and
out of the cyclic garbage collector's sight:

- one plain dict from the credential's 32-byte SHA256 digest to an entry, a
  ``bytes`` of the desired state's number, the epoch and the expiry (packed)
  followed by the device id (UTF-8); a hit builds the ``DeviceView`` it
  answers from it;
- bytes are not containers, so the collector tracks neither the entries nor
  the dict that holds them. A million entries as objects made every full
  collection walk a million objects (~330 ms each; with hundreds of requests
  in flight full collections come every few seconds: 42 % of a busy
  replica's CPU); as bytes, a full collection does not see them;
- ``Desired`` (``xdp47_ingest.desired.Desired``: tenant, desired artifact, the
  answer's JSON less the device id) is interned under a number: every device
  told the same thing shares one object. Numbers no entry uses any more are
  forgotten when the table has doubled since it was last pruned (one pass
  over the entries);
- ``epoch`` is the tenant's invalidation counter when the entry was read,
  ``expires`` the ``time.monotonic()`` past which it is not used.

The dict's order is the order entries were (re)read, oldest first; a full
cache drops the oldest 1/64th at once (first in, first out: with a TTL every
entry is re-read on expiry anyway, and for a fleet that cycles through more
devices than the cache holds, LRU would miss as often). The same pass drops
expired entries at the front. A hit does not reorder anything.

Unknown credentials are never cached: a device claimed a moment ago is known at
its first request. What the cache does not track is ``devices.current_artifact_id``
(it changes with every apply): a heartbeat's answer compares the desired artifact
with what the heartbeat itself reports, and a poll's ``action`` may say
``update`` for an artifact the device already runs until the entry is refreshed,
which the agent handles (it compares with what it applied).
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
import time
from collections.abc import Callable
from typing import Any

import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge

from xdp47_common.adapters.objects import ArtifactLinks
from xdp47_common.tokens import hash_secret
from xdp47_ingest.desired import Desired, DeviceView
from xdp47_ingest.notices import WaveChange, parse_notice
from xdp47_ingest.pg import Pool, connect, read_device, wave_credentials

__all__ = ["CHANNEL", "DesiredCache"]

CHANNEL = "xdp47_desired"
_PRUNE_FLOOR = 1024  # interned desired states kept before the first prune
_log = structlog.get_logger(__name__)


# What the cache keeps per credential: _HEAD (desired number, epoch, expires)
# and the device id's UTF-8. Bytes: nothing the cyclic GC tracks (see above).
_HEAD = struct.Struct("<QQd")
_unpack = _HEAD.unpack_from


class DesiredCache:
    """``read_device`` with a memory in front of it; see the module docstring.

    Args:
        pool: the read pool (``read_device`` runs on it).
        db_url: where the LISTEN connection goes (not a pooled connection: it
            lives as long as the cache).
        max_entries: most credentials kept; 0 disables the cache.
        ttl: seconds an entry lives at most; 0 disables the cache.
        db_timeout: timeout of the read and of the listener's health check.
        health_interval: seconds between the listener's ``SELECT 1``.
        reconnect_delay: first wait before reconnecting a lost listener
            (doubling up to 5 s).
        registry: where the cache's metrics go.
        links: the S3 store's download links (``read_device``), or ``None``.
    """

    def __init__(
        self,
        pool: Pool,
        *,
        db_url: str,
        max_entries: int,
        ttl: float,
        db_timeout: float,
        health_interval: float = 5.0,
        reconnect_delay: float = 0.2,
        registry: CollectorRegistry | None = None,
        links: ArtifactLinks | None = None,
    ) -> None:
        self._pool = pool
        self._links = links
        self._db_url = db_url
        self._db_timeout = db_timeout
        self._health_interval = health_interval
        self._reconnect_delay = reconnect_delay
        self.enabled = max_entries > 0 and ttl > 0
        self._max_entries = max(max_entries, 1)
        self._ttl = ttl
        self._entries: dict[bytes, bytes] = {}
        # Interned desired states by number, and their numbers.
        self._desired: dict[int, Desired] = {}
        self._numbers: dict[Desired, int] = {}
        self._next_number = 0
        self._prune_at = _PRUNE_FLOOR  # table size that triggers the next prune
        self._epochs: dict[str, int] = {}
        # Tenants whose wave-start drop is being read: not answered from memory.
        self._refreshing: dict[str, int] = {}
        self._drops: set[asyncio.Task[None]] = set()
        # Bumped by every invalidation: a read that saw it change is not kept.
        self._changes = 0
        self._live = False
        self._task: asyncio.Task[None] | None = None
        self._listening = asyncio.Event()
        registry = registry or CollectorRegistry()
        lookups = Counter(
            "xdp47_ingest_identity_cache_lookups_total",
            "Credential lookups by result: hit (memory), miss (read and kept), "
            "bypass (read; the cache is off, or its listener is down).",
            ["result"],
            registry=registry,
        )
        self._hit = lookups.labels("hit")
        self._miss = lookups.labels("miss")
        self._bypass = lookups.labels("bypass")
        self._invalidations = Counter(
            "xdp47_ingest_identity_cache_invalidations_total",
            "Tenants invalidated by NOTIFY xdp47_desired.",
            registry=registry,
        )
        self._wave_drops = Counter(
            "xdp47_ingest_identity_cache_wave_drops_total",
            "Wave starts and late joins heard by NOTIFY xdp47_desired whose "
            "devices' entries were dropped (the rest of the tenant stays cached).",
            registry=registry,
        )
        self._live_gauge = Gauge(
            "xdp47_ingest_identity_cache_live",
            "1 while the LISTEN connection is up and the cache is used.",
            registry=registry,
        )

    @property
    def live(self) -> bool:
        """Whether answers may come from memory now."""
        return self._live

    async def start(self, *, wait: float = 2.0) -> None:
        """Start listening; wait up to ``wait`` seconds for the first LISTEN.

        The service starts either way: until the listener is up every request
        reads the database.
        """
        if not self.enabled or self._task is not None:
            return
        self._task = asyncio.get_running_loop().create_task(self._listen_forever())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._listening.wait(), wait)

    async def close(self) -> None:
        for drop in list(self._drops):
            drop.cancel()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self._set_live(False)

    async def lookup(self, credential: str) -> DeviceView | None:
        """Who holds ``credential`` and what that device should run; ``None`` when
        nobody does.

        Raises:
            ``xdp47_common.adapters.pg.DATABASE_FAILED``: the database could
                not be read (only on a miss).
        """
        return await self.lookup_hash(hash_secret(credential))

    async def lookup_hash(self, key: bytes) -> DeviceView | None:
        """``lookup`` by the credential's hash (``tokens.hash_secret``)."""
        view = self.cached(key)
        if view is not None:
            return view
        (self._miss if self._live else self._bypass).inc()
        before = self._changes
        view = await read_device(
            self._pool, key, db_timeout=self._db_timeout, links=self._links
        )
        if view is not None and self._live and self._changes == before:
            return self._keep(key, view)
        return view

    def cached(self, key: bytes) -> DeviceView | None:
        """The view of the credential hashed to ``key`` when the cache holds it
        and may answer from it (counted as a hit); ``None`` otherwise, counted
        as nothing: only ``lookup_hash``, which reads the database then, counts
        a miss or a bypass."""
        if not self._live:
            return None
        entry = self._entries.get(key)
        if entry is None:
            return None
        number, epoch, expires = _unpack(entry)
        desired = self._desired[number]
        tenant = desired.tenant
        if (
            epoch == self._epochs.get(tenant, 0)
            and expires > time.monotonic()
            and not (self._refreshing and tenant in self._refreshing)
        ):
            self._hit.inc()
            return DeviceView(desired, entry[_HEAD.size :].decode())
        return None

    def _keep(self, key: bytes, view: DeviceView) -> DeviceView:
        entries = self._entries
        # Re-inserted, not overwritten: the dict's order is the order of reads.
        entries.pop(key, None)
        if len(entries) >= self._max_entries:
            self._trim()
        number = self._number(view.desired)
        epoch = self._epochs.get(view.desired.tenant, 0)
        expires = time.monotonic() + self._ttl
        entries[key] = _HEAD.pack(number, epoch, expires) + view.device_id.encode()
        view.desired = self._desired[number]  # the shared one
        return view

    def _number(self, desired: Desired) -> int:
        """``desired``'s number in the intern table (a new one if it is new)."""
        number = self._numbers.get(desired)
        if number is None:
            if len(self._desired) >= self._prune_at:
                self._prune()
            number = self._next_number
            self._next_number += 1
            self._desired[number] = desired
            self._numbers[desired] = number
        return number

    def _prune(self) -> None:
        """Forget the desired states no entry uses; prune again at twice what
        is left (so the passes cost O(1) per interned state)."""
        used = {_unpack(entry)[0] for entry in self._entries.values()}
        for number in [n for n in self._desired if n not in used]:
            del self._numbers[self._desired.pop(number)]
        self._prune_at = max(_PRUNE_FLOOR, 2 * len(self._desired))

    def _trim(self) -> None:
        """Drop the oldest 1/64th of a full cache, and the expired entries that
        follow it (one pass from the front: entries are in the order read)."""
        entries = self._entries
        batch = max(1, self._max_entries // 64)
        now = time.monotonic()
        drop = []
        for i, (key, entry) in enumerate(entries.items()):
            if i >= batch and _unpack(entry)[2] > now:
                break
            drop.append(key)
        for key in drop:
            del entries[key]

    # -- the listener -------------------------------------------------------

    def _on_notify(self, _conn: Any, _pid: int, _channel: str, payload: object) -> None:
        assert isinstance(payload, str)  # NOTIFY payloads are text
        self._changes += 1
        tenant, change = parse_notice(payload)
        if change is None:
            self._invalidate(tenant)
            return
        self._refreshing[tenant] = self._refreshing.get(tenant, 0) + 1
        task = asyncio.get_running_loop().create_task(self._drop_wave(tenant, change))
        self._drops.add(task)
        task.add_done_callback(self._drops.discard)

    def _invalidate(self, tenant: str) -> None:
        self._epochs[tenant] = self._epochs.get(tenant, 0) + 1
        self._invalidations.inc()

    async def _drop_wave(self, tenant: str, change: WaveChange) -> None:
        """Drop the entries of the devices ``change`` names (a wave start's, or
        a late joiner's); the whole tenant when they cannot be read."""
        try:
            keys = await wave_credentials(
                self._pool, change, db_timeout=self._db_timeout
            )
        except Exception as exc:  # any failure: the tenant-wide drop is safe
            _log.warning(
                "wave change: dropping the tenant's cached answers",
                tenant=tenant,
                error=repr(exc),
            )
            self._invalidate(tenant)
        else:
            entries = self._entries
            for key in keys:
                entries.pop(key, None)
            self._wave_drops.inc()
        finally:
            left = self._refreshing[tenant] - 1
            if left:
                self._refreshing[tenant] = left
            else:
                del self._refreshing[tenant]

    def _set_live(self, live: bool) -> None:
        # Whatever was kept before a (re)connect may have missed notifications.
        self._changes += 1
        self._entries.clear()
        self._desired.clear()
        self._numbers.clear()
        self._live = live
        self._live_gauge.set(1 if live else 0)

    async def _listen_forever(self) -> None:
        backoff = self._reconnect_delay
        while True:
            try:
                await self._listen_once()
                backoff = self._reconnect_delay
            except Exception as exc:  # any failure: serve from the database, retry
                _log.warning(
                    "identity cache listener lost; reading the database",
                    error=repr(exc),
                    retry_in=backoff,
                )
            self._set_live(False)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, max(5.0, self._reconnect_delay))

    async def _listen_once(self) -> None:
        conn = await connect(self._db_url, connect_timeout=self._db_timeout)
        lost = asyncio.Event()
        terminated: Callable[[Any], None] = lambda _c: lost.set()  # noqa: E731
        try:
            conn.add_termination_listener(terminated)
            await conn.add_listener(CHANNEL, self._on_notify)
            self._set_live(True)
            self._listening.set()
            _log.info("identity cache listening", channel=CHANNEL)
            while not lost.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(lost.wait(), self._health_interval)
                    break
                await conn.fetchval("SELECT 1", timeout=self._db_timeout)
        finally:
            self._set_live(False)
            conn.terminate()
