"""The engine side of one call: its registration, an engine stream fed from the call's audio
queue, the engine's events handed to the sinks in order, and the IVR policy applied to them.

Two tasks, so that the network never waits for the model:
  feeder      registration wait, then the call's queue -> stream.push()
  dispatcher  engine events (marshalled onto the loop) -> sinks, in order
"""
from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timezone
from typing import Awaitable, Callable, Optional

from whisper.language import parse_languages
from whisper.streaming.interface import Engine, EngineStream
from whisper.streaming.types import StreamOptions, TranscriptEvent

from ..outputs.sinks import CallInfo, SinkGroup
from ..redaction import CallRedactor, channel_text, redact_dtmf
from ..registrations import CallOptions, Registration, Registrations
from .call import Call
from .ivr import SETTLE_TIMEOUT_S, IvrPolicy
from .settings import SessionSettings

log = logging.getLogger(__name__)


def stream_options(settings: SessionSettings, options: CallOptions) -> StreamOptions:
    """The call's own options where the dialplan gave them, the bridge's otherwise."""
    language, candidates = parse_languages(options.language or settings.language)
    return StreamOptions(
        language=language, language_candidates=candidates,
        initial_prompt=options.prompt,
        partials=settings.partials if options.partials is None else options.partials,
        grammar=options.grammar,
        vocabulary=options.vocabulary or settings.vocabulary,
        trailing_silence_s=options.end_silence_s,
    )


class CallRefused(Exception):
    """The call may not go on (e.g. its UUID names a call that has ended and been stored)."""


async def admit_all(_uuid: str) -> Optional[str]:
    return None


class Transcription:
    def __init__(self, call: Call, *, engine: Engine, sinks: SinkGroup, registrations: Registrations,
                 settings: SessionSettings, stop: Callable[[str], None],
                 admit: Callable[[str], Awaitable[Optional[str]]] = admit_all) -> None:
        """`stop(reason)` ends the call from our side (the session's hangup frame and close);
        `admit(uuid)` says why a call may not start (None: it may)."""
        self._admit = admit
        self.call, self.engine, self.sinks = call, engine, sinks
        self.registrations, self.settings, self._stop = registrations, settings, stop
        self.info = CallInfo(uuid=call.uuid, peer=call.peer, started_at=datetime.now(timezone.utc),
                             sample_rate_hz=call.sample_rate_hz,
                             registration=Registration(call.uuid))
        self.stream: Optional[EngineStream] = None
        self._audio_ready = asyncio.Event()
        self._events: asyncio.Queue[Optional[TranscriptEvent]] = asyncio.Queue()
        self._feeder: Optional[asyncio.Task] = None
        self._dispatcher: Optional[asyncio.Task] = None
        self._ivr: Optional[IvrPolicy] = None
        self._no_input_timer: Optional[asyncio.TimerHandle] = None
        self._registration_claimed = False  # Registrations.wait_for() done: release() at the end
        self._announced = False  # the sinks were told of the call (call_ended owed)
        self._redactor = CallRedactor(settings.redact)

    def start(self) -> None:
        self._feeder = asyncio.create_task(self._feed())

    def wake(self) -> None:
        """There is new audio in the call's queue, or the call has ended."""
        self._audio_ready.set()

    async def finish(self) -> None:
        """Once the call has ended: its last words to the sinks, then call_ended."""
        try:
            await self._feeder
            await self._close_stream()
            self._finish_info()
            if self._announced:
                await self.sinks.call_ended(self.info)
        finally:
            if self._no_input_timer is not None:
                self._no_input_timer.cancel()
            if self._registration_claimed:
                self.registrations.release(self.call.uuid)

    # ------------------------------------------------------------ feeder
    async def _feed(self) -> None:
        try:
            await self._announce()
            if self._open_stream():
                await self._push_until_ended()
        except CallRefused as refusal:
            log.warning("call %s from %s refused: %s", self.call.uuid, self.call.peer, refusal)
            self._stop(f"refused: {refusal}")
        except Exception as error:
            log.exception("call %s: feeding the engine failed", self.call.uuid)
            self._stop(f"error: {error}")

    async def _announce(self) -> None:
        registration = await self.registrations.wait_for(self.call.uuid,
                                                         self.settings.registration_wait_s)
        self._registration_claimed = True
        self.info.registration = registration or Registration(self.call.uuid)
        refusal = await self._admit(self.call.uuid)
        if refusal is not None:
            raise CallRefused(refusal)
        options = self.info.registration.options
        self.info.redaction = options.redact or self.settings.redact
        self._redactor = CallRedactor(self.info.redaction,
                                      ivr=options.mode == "ivr" or options.grammar is not None)
        await self.sinks.call_started(self.info)
        self._announced = True

    def _open_stream(self) -> bool:
        options = self.info.registration.options
        loop = asyncio.get_running_loop()

        def on_event(event: TranscriptEvent) -> None:  # engine thread: must not block
            loop.call_soon_threadsafe(self._events.put_nowait, event)

        try:
            self.stream = self.engine.open_stream(self.call.uuid,
                                                  stream_options(self.settings, options), on_event)
        except Exception as error:
            log.exception("call %s: could not open an engine stream", self.call.uuid)
            self._stop(f"error: engine: {error}")
            return False
        self._start_ivr(options)
        self._dispatcher = asyncio.create_task(self._dispatch())
        return True

    async def _push_until_ended(self) -> None:
        while True:
            for chunk in self.call.queue.take_all():
                self.stream.push(chunk.pcm, chunk.sample_rate_hz)
            if not self.call.active:
                return
            self._audio_ready.clear()
            await self._audio_ready.wait()

    # ------------------------------------------------------------ IVR
    def _start_ivr(self, options: CallOptions) -> None:
        self._ivr = IvrPolicy.for_options(options)
        if self._ivr is not None:
            self._no_input_timer = asyncio.get_running_loop().call_later(
                self._ivr.no_input_timeout_s, self._on_no_input)

    def _on_no_input(self) -> None:
        reason = self._ivr.after_no_input_timeout()
        if reason is not None:
            self._stop(reason)

    async def _after_final(self, event: TranscriptEvent) -> None:
        reason = self._ivr.after_final(channel_text(event))
        if reason is not None:
            # TRANSCRIPT must be on the channel before AudioSocket() returns to the dialplan
            await self.sinks.settle(self.info, SETTLE_TIMEOUT_S)
            self._stop(reason)

    # ------------------------------------------------------------ dispatcher
    async def _dispatch(self) -> None:
        """Engine events, redacted, to the sinks in order; finals the redactor holds (a card
        number may go on in the next one) go once it lets them, at the latest after its hold."""
        loop = asyncio.get_running_loop()
        while True:
            hold_s = self._redactor.hold_remaining_s(loop.time())
            try:
                event = await asyncio.wait_for(self._events.get(), hold_s)
            except asyncio.TimeoutError:
                await self._deliver(self._redactor.flush())
                continue
            if event is None:
                break
            if event.is_final:
                await self._deliver(self._redactor.final(event, loop.time()))
            else:
                await self._deliver([self._redactor.partial(event, loop.time())])
        await self._deliver(self._redactor.flush())

    async def _deliver(self, events) -> None:
        for event in events:
            self.info.sample_rate_hz = self.call.sample_rate_hz
            await self.sinks.transcript(self.info, event)
            if event.is_final and self._ivr is not None:
                await self._after_final(event)

    async def _close_stream(self) -> None:
        if self.stream is None:
            return
        try:
            await asyncio.wait_for(asyncio.wrap_future(self.stream.close()),
                                   self.settings.shutdown_deadline_s)
        except asyncio.TimeoutError:
            log.warning("call %s: engine did not flush within %g s", self.call.uuid,
                        self.settings.shutdown_deadline_s)
        except Exception:
            log.exception("call %s: closing the engine stream failed", self.call.uuid)
        self._events.put_nowait(None)
        await self._dispatcher

    def _finish_info(self) -> None:
        self.info.ended_at = datetime.now(timezone.utc)
        self.info.end_reason = self.call.end_reason
        self.info.sample_rate_hz = self.call.sample_rate_hz
        self.info.dtmf = redact_dtmf(self.call.dtmf, self.info.redaction)
        if self.call.dtmf_dropped:
            log.warning("call %s: %d DTMF message(s) beyond the first %d dropped", self.call.uuid,
                        self.call.dtmf_dropped, len(self.call.dtmf))
        queue = self.call.queue
        if queue.dropped_chunks:
            log.warning("call %s: dropped %d audio chunks (%.2f s) between network and engine",
                        self.call.uuid, queue.dropped_chunks, queue.dropped_s)
