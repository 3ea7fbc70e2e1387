"""LiveCalls: calls in progress (and recently ended ones), as a Sink.

Put it last in the sink chain. With `track_storage` (the bridge's DurableStorageSink, which
writes behind the sinks) a call counts as ended for wait_ended() once it has ended and storage
has told mark_stored() that its last write landed; without, once its call_ended() ran.
Must be used from the event loop's thread.
"""
from __future__ import annotations

import asyncio
import dataclasses
from collections import OrderedDict
from datetime import datetime
from typing import TYPE_CHECKING, Optional

from ..values import canonical_uuid
from .sinks import CallInfo

if TYPE_CHECKING:
    from whisper.streaming.types import TranscriptEvent

class _Entry:
    def __init__(self) -> None:
        self.call: Optional[CallInfo] = None
        self.finals: list[TranscriptEvent] = []
        self.ended = asyncio.Event()
        self.stored = asyncio.Event()
        self.ended_at_s = 0.0  # loop time


# An IVR's clear answer (redaction.RedactedEvent.channel_text) is kept this long after its call
# ended, for the transcript AGI that the dialplan runs right after AudioSocket(); then only the
# redacted text stays.
CLEAR_KEPT_S = 300.0


class LiveCalls:
    def __init__(self, keep_ended: int = 1000, clear_kept_s: float = CLEAR_KEPT_S, *,
                 track_storage: bool = False) -> None:
        self.keep_ended, self.clear_kept_s = keep_ended, clear_kept_s
        self.track_storage = track_storage
        self._entries: "OrderedDict[str, _Entry]" = OrderedDict()

    def get(self, uuid: str) -> Optional[CallInfo]:
        entry = self._entries.get(canonical_uuid(uuid))
        return entry.call if entry else None

    def active(self) -> list[CallInfo]:
        return [e.call for e in self._entries.values() if e.call and not e.ended.is_set()]

    def finals(self, uuid: str) -> list[TranscriptEvent]:
        entry = self._entries.get(canonical_uuid(uuid))
        return list(entry.finals) if entry else []

    def has_ended(self, uuid: str) -> bool:
        """The call has ended (its storage writes may still be waiting for the database)."""
        entry = self._entries.get(canonical_uuid(uuid))
        return entry is not None and entry.ended.is_set()

    async def wait_ended(self, uuid: str, timeout_s: float) -> bool:
        """True once the call has ended and its last final has been stored."""
        entry = self._entry(canonical_uuid(uuid))

        async def ended_and_stored() -> None:
            await entry.ended.wait()
            if self.track_storage:
                await entry.stored.wait()
        try:
            await asyncio.wait_for(ended_and_stored(), timeout_s)
            return True
        except asyncio.TimeoutError:
            return False

    def mark_stored(self, uuid: str, started_at: datetime) -> None:
        """Storage has the end of the call's session that started at `started_at`."""
        entry = self._entries.get(uuid)
        if entry is not None and entry.call is not None and entry.call.started_at == started_at:
            entry.stored.set()

    # -- Sink
    async def call_started(self, call: CallInfo) -> None:
        entry = self._entry(call.uuid)
        if entry.ended.is_set():  # the same UUID connects again
            entry.ended.clear()
            entry.stored.clear()
            entry.finals.clear()
        entry.call = call

    async def transcript(self, call: CallInfo, event: TranscriptEvent) -> None:
        if event.is_final:
            self._entry(call.uuid).finals.append(event)

    async def call_ended(self, call: CallInfo) -> None:
        entry = self._entry(call.uuid)
        entry.ended.set()
        entry.ended_at_s = asyncio.get_running_loop().time()
        self._prune(entry.ended_at_s)

    async def close(self) -> None:
        return None

    def _entry(self, uuid: str) -> _Entry:
        entry = self._entries.get(uuid)
        if entry is None:
            entry = self._entries[uuid] = _Entry()
        return entry

    def _prune(self, now_s: float) -> None:
        ended = [k for k, e in self._entries.items() if e.ended.is_set()]
        for key in ended[: max(0, len(ended) - self.keep_ended)]:
            del self._entries[key]
        for entry in self._entries.values():
            if entry.ended.is_set() and now_s - entry.ended_at_s > self.clear_kept_s:
                entry.finals = [_without_clear(f) for f in entry.finals]


def _without_clear(event: TranscriptEvent) -> TranscriptEvent:
    if getattr(event, "channel_text", None) is None:
        return event
    return dataclasses.replace(event, channel_text=None)
