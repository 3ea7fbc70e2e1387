"""The post-call webhook (``--webhook-url``): each ended call's JSON transcript POSTed once its
call has ended, from a durable queue in the database (outputs/webhook_queue.py).

The storage writer queues a call once its end has landed in storage, so its transcript there is
complete (WebhookWorker.call_stored, a DurableStorageSink hook: outputs/durable.py). The worker,
an asyncio task, also queues the calls that ended without that (ended by the presence sweep
because their bridge died), claims due deliveries, POSTs them (webhook_sender.py, in threads)
and writes each outcome as webhook_policy.judge() says. Delivery is at least once: a bridge that
dies after the receiver answered but before the outcome is written leaves a lease that expires,
and the call is POSTed again with the same Idempotency-Key.
"""
from __future__ import annotations

import asyncio
import io
import logging
import random
import tempfile
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from datetime import datetime, timedelta
from typing import BinaryIO, Callable, Optional

from .export import write_call
from .presence import utc_now
from .webhook_policy import (DELIVERED, FAILED, PostResult, Verdict, WebhookOptions, judge,
                             shown_url)
from .webhook_queue import Claimed, WebhookQueue
from .webhook_sender import post, request_headers

log = logging.getLogger(__name__)

Sender = Callable[[str, BinaryIO, dict, float], PostResult]  # (url, body, headers, timeout_s)
BODY_IN_MEMORY_BYTES = 1 << 20  # a longer export is written to a temporary file, not kept in memory


def export_json(storage, call_uuid: str, body: BinaryIO) -> bool:
    """The call's JSON document into `body` (UTF-8), left at its start; False if not stored."""
    text = io.TextIOWrapper(body, encoding="utf-8", newline="\n")
    try:
        found = write_call(storage, call_uuid, "json", text)
        text.flush()
    finally:
        text.detach()
    body.seek(0)
    return found


class WebhookWorker:
    """Delivers the queue of one webhook URL; start() on the event loop, close() to stop (a POST
    in flight is given its timeout to finish; else its lease just expires)."""

    def __init__(self, storage, options: WebhookOptions, *, sender: Sender = post,
                 clock: Callable[[], datetime] = utc_now,
                 draw: Callable[[], float] = random.random) -> None:
        self.storage, self.options = storage, options
        self.queue = WebhookQueue(storage, options.url, options.lease_s)
        self._sender, self._clock, self._draw = sender, clock, draw
        self.delivered = self.failed = self.retries = 0  # counted since start (metrics)
        self.pending = 0  # deliveries waiting in the queue, as last counted
        self._executor = ThreadPoolExecutor(max_workers=options.batch + 1,
                                            thread_name_prefix="webhook")
        self._wake = asyncio.Event()
        self._stopping = False
        self._next_reconcile_s = 0.0  # on the loop's clock
        self._task: Optional[asyncio.Task] = None
        self._loop: Optional[asyncio.AbstractEventLoop] = None

    def call_stored(self, call_uuid: str) -> None:
        """The call's end is in storage: queue its delivery. Blocking (the storage writer's
        thread); raises when the queue cannot be written (the writer tries again)."""
        self.queue.enqueue(call_uuid, self._clock())
        loop = self._loop
        if loop is not None and not loop.is_closed():
            with suppress(RuntimeError):
                loop.call_soon_threadsafe(self.wake)

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._task = asyncio.create_task(self._run(), name="webhook-worker")
        log.info("webhook: POSTing each ended call to %s (%s)", shown_url(self.options.url),
                 "signed" if self.options.secret else "NOT signed: no --webhook-secret")

    def wake(self) -> None:
        """A delivery was queued: look at the queue now rather than at the next poll."""
        self._wake.set()

    async def close(self) -> None:
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._task), self.options.timeout_s + 2.0)
            except asyncio.TimeoutError:
                self._task.cancel()
                with suppress(asyncio.CancelledError):
                    await self._task
        self._executor.shutdown(wait=False)

    async def _run(self) -> None:
        while not self._stopping:
            self._wake.clear()
            try:
                delivered_some = await self._one_pass()
            except Exception:  # noqa: BLE001 - storage may be away for a while; keep trying
                log.warning("webhook: the delivery queue could not be read", exc_info=True)
                delivered_some = False
            if not delivered_some:
                with suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.options.poll_s)

    async def _one_pass(self) -> bool:
        """Queues the calls ended unseen (when that is due), then POSTs one batch of due
        deliveries; False when there was none."""
        loop = asyncio.get_running_loop()
        if loop.time() >= self._next_reconcile_s:
            await self._reconcile()
            self._next_reconcile_s = loop.time() + self.options.reconcile_s
        if self._stopping:
            return False
        claimed = await self._blocking(self.queue.claim, self._clock(), self.options.batch)
        if claimed:
            await self._deliver_all(claimed)
            self.pending = await self._blocking(self.queue.pending_count)
        return bool(claimed)

    async def _reconcile(self) -> None:
        now = self._clock()
        since = now - timedelta(seconds=self.options.catch_up_s)
        await self._blocking(self.queue.enqueue_ended_calls, now, since)
        self.pending = await self._blocking(self.queue.pending_count)

    async def _deliver_all(self, claimed: list[Claimed]) -> None:
        outcomes = await asyncio.gather(*(self._deliver(c) for c in claimed),
                                        return_exceptions=True)
        for outcome in outcomes:
            if isinstance(outcome, Exception):  # its lease expires: tried again then
                log.warning("webhook: a delivery failed on storage", exc_info=outcome)

    async def _deliver(self, claimed: Claimed) -> None:
        attempt = claimed.attempts + 1
        with tempfile.SpooledTemporaryFile(max_size=BODY_IN_MEMORY_BYTES) as body:
            if not await self._blocking(export_json, self.storage, claimed.uuid, body):
                verdict = Verdict(FAILED, error="the call is not in storage")
            else:
                headers = await self._blocking(request_headers, claimed.uuid, body,
                                               self.options.secret)
                result = await self._blocking(self._sender, self.options.url, body, headers,
                                              self.options.timeout_s)
                now = self._clock()
                age_s = (now - claimed.created_at).total_seconds()
                verdict = judge(result, attempt, age_s, self.options, now, self._draw)
        if await self._blocking(self.queue.finish, claimed, verdict, self._clock()):
            self._count(claimed.uuid, attempt, verdict)

    def _count(self, call_uuid: str, attempt: int, verdict: Verdict) -> None:
        if verdict.state == DELIVERED:
            self.delivered += 1
            log.info("webhook: call %s delivered (attempt %d)", call_uuid, attempt)
        elif verdict.state == FAILED:
            self.failed += 1
            log.error("webhook: call %s not delivered, given up: %s", call_uuid, verdict.error)
        else:
            self.retries += 1
            level = logging.WARNING if attempt == 1 else logging.DEBUG
            log.log(level, "webhook: call %s: %s; trying again in %.1f s", call_uuid,
                    verdict.error, verdict.delay_s)

    async def _blocking(self, function, *args):
        return await asyncio.get_running_loop().run_in_executor(self._executor, function, *args)
