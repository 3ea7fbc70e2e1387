"""LiveCalls: calls in progress (and recently ended ones), as a Sink.

Put it last in the sink chain: its call_ended() then runs after the storage
sink has stored the call's last final, which is what wait_ended() promises.
Must be used from the event loop's thread.
"""
from __future__ import annotations

import asyncio
from collections import OrderedDict
from typing import TYPE_CHECKING, Optional

from ..audiosocket.protocol import canonical_uuid
from .sinks import CallInfo

if TYPE_CHECKING:
    from whisper.streaming.types import TranscriptEvent

class _Entry:
    def __init__(self) -> None:
        self.call: Optional[CallInfo] = None
        self.finals: list[TranscriptEvent] = []
        self.ended = asyncio.Event()


class LiveCalls:
    def __init__(self, keep_ended: int = 1000) -> None:
        self.keep_ended = keep_ended
        self._entries: "OrderedDict[str, _Entry]" = OrderedDict()

    def get(self, uuid: str) -> Optional[CallInfo]:
        entry = self._entries.get(canonical_uuid(uuid))
        return entry.call if entry else None

    def active(self) -> list[CallInfo]:
        return [e.call for e in self._entries.values() if e.call and not e.ended.is_set()]

    def finals(self, uuid: str) -> list[TranscriptEvent]:
        entry = self._entries.get(canonical_uuid(uuid))
        return list(entry.finals) if entry else []

    async def wait_ended(self, uuid: str, timeout_s: float) -> bool:
        """True once the call has ended and its last final has been stored."""
        entry = self._entry(canonical_uuid(uuid))
        try:
            await asyncio.wait_for(entry.ended.wait(), timeout_s)
            return True
        except asyncio.TimeoutError:
            return False

    # -- Sink
    async def call_started(self, call: CallInfo) -> None:
        entry = self._entry(call.uuid)
        if entry.ended.is_set():  # the same UUID connects again
            entry.ended.clear()
            entry.finals.clear()
        entry.call = call

    async def transcript(self, call: CallInfo, event: TranscriptEvent) -> None:
        if event.is_final:
            self._entry(call.uuid).finals.append(event)

    async def call_ended(self, call: CallInfo) -> None:
        self._entry(call.uuid).ended.set()
        self._prune()

    async def close(self) -> None:
        return None

    def _entry(self, uuid: str) -> _Entry:
        entry = self._entries.get(uuid)
        if entry is None:
            entry = self._entries[uuid] = _Entry()
        return entry

    def _prune(self) -> None:
        ended = [k for k, e in self._entries.items() if e.ended.is_set()]
        for key in ended[: max(0, len(ended) - self.keep_ended)]:
            del self._entries[key]
