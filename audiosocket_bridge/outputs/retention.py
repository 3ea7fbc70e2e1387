"""Retention: calls older than their retention are deleted on a schedule (storage.purge_expired).

The bridge-wide `--retention-days` applies to calls without their own `Retention` (dialplan);
0 keeps them forever. Each run deletes in batches until nothing is due, in the storage's worker
threads, so live calls' writes wait at most one batch. Several bridges sharing one database may
all run it: a call deleted by one is simply not found by the others.
"""
from __future__ import annotations

import asyncio
import logging
from contextlib import suppress
from datetime import datetime, timezone
from typing import Callable, Optional

log = logging.getLogger(__name__)

INTERVAL_S = 3600.0
FIRST_RUN_S = 30.0  # after start: not in the way of the first calls, soon enough to be seen


class Retention:
    def __init__(self, storage, default_days: float, *, interval_s: float = INTERVAL_S,
                 first_run_s: float = FIRST_RUN_S,
                 clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc)) -> None:
        self.storage, self.default_days = storage, default_days
        self.interval_s, self.first_run_s = interval_s, first_run_s
        self._clock = clock
        self.deleted_calls = 0  # read by metrics
        self.failures = 0
        self._task: Optional[asyncio.Task] = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="retention")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with suppress(asyncio.CancelledError):
                await self._task

    async def run_once(self) -> int:
        """Delete every call due now; returns how many."""
        loop, total = asyncio.get_running_loop(), 0
        now = self._clock()
        while deleted := await loop.run_in_executor(None, self.storage.purge_expired, now,
                                                     self.default_days):
            total += deleted
            self.deleted_calls += deleted
        if total:
            log.info("retention: deleted %d call(s) past their retention", total)
        return total

    async def _loop(self) -> None:
        await asyncio.sleep(self.first_run_s)
        while True:
            try:
                await self.run_once()
            except Exception:  # noqa: BLE001 - storage may be down; the next run tries again
                self.failures += 1
                log.warning("retention: purge failed", exc_info=True)
            await asyncio.sleep(self.interval_s)
