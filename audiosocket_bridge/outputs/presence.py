"""Bridges sharing one database: which bridge is alive, and so whether a stored call is still live.

Each bridge writes a heartbeat into the `bridges` table every `heartbeat_s`; a call row names the
bridge that owns it. Any bridge can then tell, from the database alone, whether a call it does not
hold itself is live on another bridge (FastAGI answers PENDING and waits), has ended, or was lost
with a bridge that died (no heartbeat for `silent_after_s`): such calls are marked ended with
end_reason "bridge-lost" by whichever bridge notices first. Clocks of the bridges are compared,
so keep them in sync (NTP); `silent_after_s` is many heartbeats, far above any skew NTP leaves.
"""
from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Callable, Optional

from .storage import StoredCall

log = logging.getLogger(__name__)

LOST_REASON = "bridge-lost"


@dataclass(frozen=True)
class PresenceTiming:
    heartbeat_s: float = 2.0
    silent_after_s: float = 10.0  # a bridge without a heartbeat for this long is gone
    registrations_kept_s: float = 86400.0  # shared registrations (FastAGI register) kept this long
    # a UUID may be continued this long after its call ended (an IVR loop running AudioSocket()
    # again, a failover through HAProxy), never later: a stored call is not reopened by a stranger
    continue_within_s: float = 300.0


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def call_state(call: StoredCall, now: datetime, timing: PresenceTiming = PresenceTiming()) -> str:
    """'ended', 'live' (its bridge is alive and has not ended it) or 'lost' (its bridge died)."""
    if call.ended_at is not None:
        return "ended"
    if call.owner_heartbeat_at is None or call.owner_stopped_at is not None:
        return "lost"  # its bridge stopped without ending it, or kept no presence (old release)
    silent_s = (now - call.owner_heartbeat_at).total_seconds()
    return "lost" if silent_s > timing.silent_after_s else "live"


def reuse_refusal(call: Optional[StoredCall], now: datetime,
                  timing: PresenceTiming = PresenceTiming()) -> Optional[str]:
    """Why a new connection may not continue the stored call of its UUID (None: it may): the
    call ended longer than `continue_within_s` ago. A call still live on another bridge may be
    continued: that bridge may have just died (HAProxy fails the call over to this one)."""
    if call is None or call.ended_at is None:
        return None
    if (now - call.ended_at).total_seconds() > timing.continue_within_s:
        return "its UUID names a call that ended and was stored; a new call needs a new UUID"
    return None


class BridgePresence:
    """Keeps this bridge's row in `bridges` fresh and ends the calls of bridges that died.

    Storage calls are blocking; they run in a thread of their own, off the event loop, and the
    bridge gives presence a database connection of its own: a heartbeat never waits behind a
    transcript write or a query stalled on a database that is away.
    """

    def __init__(self, storage, address: str, timing: PresenceTiming = PresenceTiming(), *,
                 clock: Callable[[], datetime] = utc_now) -> None:
        self.storage, self.address, self.timing = storage, address, timing
        self._clock = clock
        self.draining = False
        self._task: Optional[asyncio.Task] = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="presence")

    async def start(self) -> None:
        now = self._clock()
        await self._run(self.storage.end_own_calls, now, LOST_REASON)
        await self._run(self.storage.record_bridge_start, self.address, now)
        await self._sweep(now)
        self._task = asyncio.create_task(self._beat(), name="bridge-presence")
        log.info("bridge %s present in storage (heartbeat every %g s)", self.storage.bridge_id,
                 self.timing.heartbeat_s)

    async def set_draining(self) -> None:
        self.draining = True
        await self._run(self.storage.record_heartbeat, self._clock(), draining=True)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with suppress(asyncio.CancelledError):
                await self._task
        try:
            await self._run(self.storage.record_bridge_stop, self._clock())
        except Exception:  # noqa: BLE001 - storage may be down at shutdown; others will notice
            log.warning("could not record this bridge's stop in storage", exc_info=True)
        self._executor.shutdown(wait=False)

    async def _beat(self) -> None:
        failing = False
        while True:
            await asyncio.sleep(self.timing.heartbeat_s)
            now = self._clock()
            try:
                await self._run(self.storage.record_heartbeat, now, draining=self.draining)
                await self._sweep(now)
            except Exception as error:  # noqa: BLE001 - keep beating; /healthz reports storage
                # once per outage: a database away for an hour is not 1800 tracebacks
                log.log(logging.DEBUG if failing else logging.WARNING,
                        "presence heartbeat failed: %s: %s", type(error).__name__,
                        " ".join(str(error).split())[:300])
                failing = True
                continue
            if failing:
                log.warning("presence heartbeat written again")
            failing = False

    async def _sweep(self, now: datetime) -> None:
        silent_since = now - timedelta(seconds=self.timing.silent_after_s)
        await self._run(self.storage.end_calls_of_gone_bridges, now, silent_since, LOST_REASON)
        await self._run(self.storage.forget_registrations,
                        now - timedelta(seconds=self.timing.registrations_kept_s))

    async def _run(self, function, *args, **kwargs) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, lambda: function(*args, **kwargs))
