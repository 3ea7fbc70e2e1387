"""Where transcripts go: the Sink protocol, CallInfo, and the console/storage sinks."""
from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Callable, Optional, Protocol, Sequence

from ..registrations import Registration

if TYPE_CHECKING:
    from whisper.streaming.types import TranscriptEvent

log = logging.getLogger(__name__)


@dataclass
class CallInfo:
    uuid: str
    peer: str  # "host:port" of the AudioSocket client
    started_at: datetime  # UTC, when the UUID frame arrived
    sample_rate_hz: int  # latest audio rate seen (8000 before any audio)
    registration: Registration  # from Registrations (channel may be None)
    dtmf: list[tuple[float, str]] = field(default_factory=list)  # (seconds from call start, digit)
    ended_at: Optional[datetime] = None
    redaction: str = "pci"  # the policy applied to this call's text and DTMF (redaction.py)
    end_reason: Optional[str] = None  # "hangup", "closed", "idle-timeout", "error: ...", "shutdown", "ivr-final", "ivr-no-input"


class Sink(Protocol):
    """Every method must not raise into the server (log instead)."""

    async def call_started(self, call: CallInfo) -> None: ...

    async def transcript(self, call: CallInfo, event: TranscriptEvent) -> None: ...

    async def call_ended(self, call: CallInfo) -> None: ...

    async def close(self) -> None: ...

    # Optional: `async def settle(self, call, timeout_s) -> None` returns once what the sink has
    # taken for `call` so far has reached its destination (or after timeout_s).


class SinkGroup:
    """Calls several sinks in order, isolating each one's failures."""

    def __init__(self, sinks: Sequence[Sink]) -> None:
        self.sinks = list(sinks)

    async def call_started(self, call: CallInfo) -> None:
        await self._each("call_started", call)

    async def transcript(self, call: CallInfo, event: TranscriptEvent) -> None:
        await self._each("transcript", call, event)

    async def call_ended(self, call: CallInfo) -> None:
        await self._each("call_ended", call)

    async def close(self) -> None:
        await self._each("close")

    async def settle(self, call: CallInfo, timeout_s: float) -> None:
        """Wait (at most timeout_s) until every sink has delivered what it has for `call`."""
        waits = [sink.settle(call, timeout_s) for sink in self.sinks if hasattr(sink, "settle")]
        if waits:
            await asyncio.gather(*waits, return_exceptions=True)

    async def _each(self, method: str, *args) -> None:
        for sink in self.sinks:
            try:
                await getattr(sink, method)(*args)
            except Exception:
                log.exception("sink %s.%s failed", type(sink).__name__, method)


def _channel_label(call: CallInfo) -> str:
    return call.registration.channel or call.peer


class ConsoleSink:
    """One log line per call start/end and per partial/final."""

    def __init__(self, show_partials: bool = True, logger: Optional[logging.Logger] = None) -> None:
        self.show_partials = show_partials
        self.log = logger or logging.getLogger("audiosocket_bridge.transcript")

    async def call_started(self, call: CallInfo) -> None:
        self.log.info("call %s started from %s (%s) at %s", call.uuid, call.peer,
                      _channel_label(call), call.started_at.isoformat(timespec="seconds"))

    async def transcript(self, call: CallInfo, event: TranscriptEvent) -> None:
        if event.kind == "partial" and not self.show_partials:
            return
        # transcripts are sensitive: DEBUG only, and redacted like everything the sinks get
        self.log.debug("call %s %-7s #%d [%7.2fs -> %7.2fs] %s", call.uuid, event.kind,
                       event.segment_index, event.start_s, event.end_s, event.text.strip())

    async def call_ended(self, call: CallInfo) -> None:
        ended = call.ended_at.isoformat(timespec="seconds") if call.ended_at else "?"
        self.log.info("call %s ended at %s: %s", call.uuid, ended, call.end_reason)

    async def close(self) -> None:
        return None


class StorageSink:
    """Writes every final to storage as it arrives, in one worker thread.

    The single worker keeps writes in arrival order, so once call_ended()
    returns, every final of that call is durable.
    """

    def __init__(self, storage) -> None:
        self.storage = storage
        self.errors = 0  # failed storage writes (logged; read by metrics)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="storage")

    async def call_started(self, call: CallInfo) -> None:
        await self._run(self.storage.record_call_start, call)

    async def transcript(self, call: CallInfo, event: TranscriptEvent) -> None:
        if event.is_final:
            await self._run(self.storage.record_final, call, event)

    async def alert(self, call: CallInfo, alert) -> None:
        from .search import record_alert

        await self._run(record_alert, self.storage, call.uuid, alert.segment, alert.rule,
                        alert.matched, alert.start_s, alert.end_s)

    async def call_ended(self, call: CallInfo) -> None:
        await self._run(self.storage.record_call_end, call)

    async def close(self) -> None:
        await asyncio.get_running_loop().run_in_executor(None, self._executor.shutdown, True)
        self.storage.close()

    async def _run(self, function: Callable, *args) -> None:
        try:
            await asyncio.get_running_loop().run_in_executor(self._executor, function, *args)
        except Exception:
            self.errors += 1
            log.exception("storage write %s failed", function.__name__)
