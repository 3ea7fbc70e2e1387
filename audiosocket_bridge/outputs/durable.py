"""DurableStorageSink: every call start, final and call end reaches storage exactly once, in
order, through database outages, without the other sinks waiting for the database.

The sink's methods only put a record into the Spool (memory, then a file: outputs/spool.py) and
return (call_started waits up to `start_wait_s` for the start to land, so that the sinks after
it read the session's segment numbering from storage, as captions and alerts do; while the
database is away it goes on without); one writer thread takes the records oldest first and writes each through storage. A
write that fails for a reason that passes (the database is down or restarting, a statement
timed out, the disk is full: `is_transient`) is tried again, after a growing pause, until it
lands, so a call's start always lands before its finals (no foreign-key failure) and nothing
after it overtakes it. A write storage refuses for good (a bug, bad data) is counted in
`errors`, logged and skipped. Every write is idempotent (upserts; a final's index is fixed by its
record), so a write tried again after a lost answer is stored once.

Once a call's end has landed, `on_call_stored` hooks run in the writer thread (the webhook
queues the call: a hook that fails passingly is tried again with the end) and, on the event
loop, LiveCalls hears that the call is stored (FastAGI waits for that).
"""
from __future__ import annotations

import asyncio
import logging
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Callable, Optional, Sequence

from .presence import LOST_REASON
from .sinks import CallInfo
from .spool import Spool
from .spool_records import (ALERT, END, FINAL, START, alert_record, call_of, end_record,
                            ended_call_of, event_of, final_record, orphan_ends, session_key,
                            start_record)
from .storage_errors import is_transient, one_line

if TYPE_CHECKING:
    from whisper.streaming.types import TranscriptEvent

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WriterTiming:
    retry_first_s: float = 0.2  # pause after the first failed try of a write
    retry_max_s: float = 5.0  # the pause doubles up to this
    close_wait_s: float = 5.0  # at close, how long the database gets to take what waits
    start_wait_s: float = 2.0  # how long call_started waits for the start to land


class DurableStorageSink:
    def __init__(self, storage, spool: Spool, timing: WriterTiming = WriterTiming(), *,
                 on_call_stored: Sequence[Callable[[str], None]] = ()) -> None:
        self.storage, self.spool, self.timing = storage, spool, timing
        self.on_call_stored = list(on_call_stored)  # (uuid) -> None, in the writer thread
        self.on_stored_loop: Optional[Callable[[str, datetime], None]] = None  # on the loop
        self.errors = 0  # writes storage refused for good (logged, skipped)
        self.available = True  # False from a failed write until the next one lands
        self._offsets: dict[str, int] = {}  # session -> segment offset, once its start landed
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._starts: dict[str, asyncio.Event] = {}  # session -> set once its start landed
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._stop_by_s = 0.0
        self._thread: Optional[threading.Thread] = None

    def start(self) -> None:
        """Starts the writer; calls left open in a spool of a run that died are ended first."""
        ends = orphan_ends(self.spool.records_in_file(), datetime.now(timezone.utc), LOST_REASON)
        for record in ends:
            self.spool.put(record)
        self._thread = threading.Thread(target=self._write_all, name="storage-writer",
                                        daemon=True)
        self._thread.start()

    # -- Sink: never waits for the database
    async def call_started(self, call: CallInfo) -> None:
        self._loop = asyncio.get_running_loop()
        landed = self._starts[session_key(call)] = asyncio.Event()
        self._put(start_record(call))
        try:
            await asyncio.wait_for(landed.wait(), self.timing.start_wait_s)
        except asyncio.TimeoutError:
            pass  # the database is away: the call goes on, its start waits in the spool
        finally:
            self._starts.pop(session_key(call), None)

    async def transcript(self, call: CallInfo, event: TranscriptEvent) -> None:
        if event.is_final:
            self._put(final_record(call, event, self._offsets.get(session_key(call))))

    async def alert(self, call: CallInfo, alert) -> None:
        self._put(alert_record(call, alert))

    async def call_ended(self, call: CallInfo) -> None:
        self._put(end_record(call))

    async def close(self) -> None:
        """Gives the database `close_wait_s` to take what waits; the rest goes to the spool
        file, for the next start."""
        self._stop_by_s = time.monotonic() + self.timing.close_wait_s
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            await asyncio.get_running_loop().run_in_executor(None, self._thread.join)
        self.spool.persist()  # what still waits (none: the file is emptied)
        self.storage.close()

    def _put(self, record: dict) -> None:
        self.spool.put(record)
        self._wake.set()

    # -- the writer thread
    def _write_all(self) -> None:
        pause_s, down_since = self.timing.retry_first_s, None
        while True:
            record = self.spool.peek()
            if record is None:
                if self._stopping.is_set():
                    return
                self._wake.wait(1.0)
                self._wake.clear()
                continue
            try:
                self._write(record)
            except Exception as error:  # noqa: BLE001 - sorted below
                if not is_transient(error):
                    self._refused(record, error)
                    self.spool.pop()
                    if record["op"] == START:  # nothing to wait for
                        self._call_on_loop(self._start_landed, record["session"])
                    elif record["op"] == END:  # as stored as it will be: FastAGI need not wait
                        self._tell_loop(record["uuid"], record["session"])
                    continue
                if down_since is None:
                    down_since = time.monotonic()
                    self._went_down(error)
                if self._stopping.is_set() and time.monotonic() >= self._stop_by_s:
                    return
                self.spool.sync()
                self._pause(pause_s)
                pause_s = min(pause_s * 2, self.timing.retry_max_s)
                continue
            self.spool.pop()
            if down_since is not None:
                self._came_back(time.monotonic() - down_since)
                pause_s, down_since = self.timing.retry_first_s, None

    def _pause(self, pause_s: float) -> None:
        if self._stopping.is_set():  # closing: no sooner, no later than close_wait_s allows
            time.sleep(max(0.0, min(pause_s, self._stop_by_s - time.monotonic())))
        else:
            self._stopping.wait(pause_s)

    def _write(self, record: dict) -> None:
        op, uuid = record["op"], record["uuid"]
        if op == START:
            self.storage.record_call_start(call_of(record))
            self._offsets[record["session"]] = self.storage.segment_offset(uuid) or 0
            self._call_on_loop(self._start_landed, record["session"])
        elif op == FINAL:
            offset = record.get("offset")
            if offset is None:
                offset = self._offsets.get(record["session"])
            if offset is not None:
                self.storage.resume_segment_offset(uuid, offset)
            self.storage.record_final(_Uuid(uuid), event_of(record))
        elif op == ALERT:
            from .search import record_alert

            record_alert(self.storage, uuid, record["segment"], record["rule"], record["matched"],
                         record["start_s"], record["end_s"])
        elif op == END:
            self.storage.record_call_end(ended_call_of(record))
            for hook in self.on_call_stored:
                hook(uuid)
            self._offsets.pop(record["session"], None)
            self._tell_loop(uuid, record["session"])

    def _tell_loop(self, uuid: str, session: str) -> None:
        if self.on_stored_loop is not None:
            started_at = datetime.fromisoformat(session.split("@", 1)[1])
            self._call_on_loop(self.on_stored_loop, uuid, started_at)

    def _start_landed(self, session: str) -> None:
        landed = self._starts.get(session)
        if landed is not None:
            landed.set()

    def _call_on_loop(self, function, *args) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            loop.call_soon_threadsafe(function, *args)
        except RuntimeError:  # the loop closed meanwhile
            pass

    def _refused(self, record: dict, error: Exception) -> None:
        self.errors += 1
        log.error("storage refused the %s write of call %s, skipped: %s", record["op"],
                  record["uuid"], one_line(error))

    def _went_down(self, error: Exception) -> None:
        self.available = False
        log.warning("storage unavailable (%s); keeping writes until it is back (%d waiting)",
                    one_line(error), self.spool.pending)

    def _came_back(self, down_s: float) -> None:
        self.available = True
        log.warning("storage back after %.1f s; %d write(s) still waiting", down_s,
                    self.spool.pending)


class _Uuid:
    """What storage's record_final reads of a call: its uuid."""

    def __init__(self, uuid: str) -> None:
        self.uuid = uuid

