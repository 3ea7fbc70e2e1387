"""One AudioSocket connection: socket I/O around a pure `Call`.

Three tasks per connection, so the network never waits for the model:
  reader     socket -> decoder -> Call (audio lands in the Call's bounded queue)
  feeder     Call queue -> engine stream.push() (after the registration wait)
  dispatcher engine events (marshalled onto the loop) -> sinks, in order
and one timer (`_tick`) for the wall clock: the idle timeout, keep-alive silence to Asterisk and
silence for the engine while no media arrives (see SessionSettings).
"""
from __future__ import annotations

import asyncio
import logging
import socket
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable, Optional

from whisper.stream_types import StreamOptions, TranscriptEvent

from .call import Call, CallError, CallState, Outcome
from ..registrations import Registrations, CallOptions, Registration
from .protocol import FrameDecoder, ProtocolError, RawAudioDecoder, encode_audio, encode_hangup
from ..outputs.sinks import CallInfo, SinkGroup

log = logging.getLogger(__name__)

READ_CHUNK_BYTES = 65536
TICK_S = 0.25
G711_WARNING_FRAMES = 25
FRAME_MS = 20


@dataclass(frozen=True)
class SessionSettings:
    max_frame_bytes: int = 32768
    idle_timeout_s: float = 30.0
    raw: bool = False
    raw_sample_rate_hz: int = 16000
    language: Optional[str] = None
    initial_prompt: Optional[str] = None
    partials: bool = True
    queue_max_s: float = 10.0
    registration_wait_s: float = 0.0
    ivr_no_input_timeout_s: float = 10.0
    flush_timeout_s: float = 30.0
    # app_audiosocket hangs the channel up after 2 s with no media either way (a ChanSpy leg while
    # nobody talks, hold, silence suppression): 20 ms of silence back to Asterisk whenever it has
    # sent nothing for this long keeps the call up. 0 turns it off.
    keepalive_s: float = 0.5
    # With no media for this long the engine is fed silence in real time (up to gap_fill_max_s
    # per gap), so an utterance followed by a media gap is finalised on time, not at the hang-up.
    gap_fill_after_s: float = 0.3
    gap_fill_max_s: float = 5.0
    # IVR: how long the hangup frame waits for the sinks to acknowledge the final (AMI Setvar of
    # TRANSCRIPT), so the dialplan after AudioSocket() reads it.
    settle_timeout_s: float = 2.0
    linger_s: float = 2.0  # after our hangup frame: read Asterisk's last audio until it closes


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


def peer_label(writer: asyncio.StreamWriter) -> str:
    peer = writer.get_extra_info("peername")
    if isinstance(peer, tuple) and len(peer) >= 2:
        return f"{peer[0]}:{peer[1]}"
    return str(peer)


def set_nodelay(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


async def send_hangup_and_close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                                 linger_s: float = 2.0) -> None:
    """A hangup message in one write (Asterisk reads the 3-byte header in one read), then a
    half-close, then Asterisk's last frames read and dropped until it closes (at most linger_s).

    Closing a socket with unread data makes the kernel answer with RST: Asterisk's next read or
    write fails, AudioSocket() returns -1 and the call is hung up instead of going on in the
    dialplan.
    """
    try:
        if not writer.is_closing():
            writer.write(encode_hangup())
            await asyncio.wait_for(writer.drain(), linger_s)
            if writer.can_write_eof():
                writer.write_eof()
            await asyncio.wait_for(_discard_until_eof(reader), linger_s)
    except (OSError, asyncio.TimeoutError):
        pass
    await close_writer(writer)


async def _discard_until_eof(reader: asyncio.StreamReader) -> None:
    while await reader.read(READ_CHUNK_BYTES):
        pass


async def close_writer(writer: asyncio.StreamWriter) -> None:
    writer.close()
    try:
        await asyncio.wait_for(writer.wait_closed(), 2.0)
    except (OSError, asyncio.TimeoutError):
        pass


def stream_options(settings: SessionSettings, options: CallOptions) -> StreamOptions:
    return StreamOptions(
        language=options.language or settings.language,
        initial_prompt=options.prompt or settings.initial_prompt,
        partials=settings.partials if options.partials is None else options.partials,
    )


class CallSession:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *,
                 engine, sinks: SinkGroup, directory: Registrations, settings: SessionSettings,
                 claim_uuid: Callable[[str], bool], release_uuid: Callable[[str], None],
                 counters: Optional[Counter] = None) -> None:
        self.reader, self.writer = reader, writer
        # shared with the server (read by metrics): frames by kind, bytes, drops, protocol errors
        self.counters = counters if counters is not None else Counter()
        self._dropped_chunks_seen, self._dropped_s_seen = 0, 0.0
        self.engine, self.sinks, self.directory, self.settings = engine, sinks, directory, settings
        self._claim_uuid, self._release_uuid = claim_uuid, release_uuid
        self.peer = peer_label(writer)
        if settings.raw:
            self.call = Call.raw(self.peer, queue_max_s=settings.queue_max_s)
            self.decoder = RawAudioDecoder(settings.raw_sample_rate_hz)
        else:
            self.call = Call(self.peer, queue_max_s=settings.queue_max_s)
            self.decoder = FrameDecoder(settings.max_frame_bytes)
        self.info: Optional[CallInfo] = None
        self.stream = None
        self._audio_ready = asyncio.Event()
        self._events: asyncio.Queue = asyncio.Queue()
        self._reader_task: Optional[asyncio.Task] = None
        self._feeder_task: Optional[asyncio.Task] = None
        self._dispatcher_task: Optional[asyncio.Task] = None
        self._ivr_timer: Optional[asyncio.Task] = None
        self._tick_timer: Optional[asyncio.TimerHandle] = None
        self._last_read_s = self._last_write_s = 0.0
        self._last_audio_s: Optional[float] = None  # loop time of the last audio frame
        self._gap_filled_s = 0.0  # silence given to the engine since then
        self._hangup_on_close = False
        self._claimed = False
        self._claimed_registration = False  # directory.wait_for() done: release() at the end
        self._finals = 0

    # ------------------------------------------------------------ lifecycle
    async def run(self) -> None:
        set_nodelay(self.writer)
        if self.call.active:
            self._on_started()
        self._reader_task = asyncio.create_task(self._read_loop())
        await asyncio.wait([self._reader_task])
        await self._close_socket()
        await self._flush()

    def stop(self, reason: str) -> None:
        """End the call from our side (shutdown, IVR): hangup frame, close, flush."""
        if self.call.end(reason):
            self._hangup_on_close = True
            log.info("call %s from %s: ending (%s)", self.call.uuid or "-", self.peer, reason)
        self._audio_ready.set()
        if self._reader_task:
            self._reader_task.cancel()

    # ------------------------------------------------------------ reader
    async def _read_loop(self) -> None:
        loop = asyncio.get_running_loop()
        self._last_read_s = self._last_write_s = loop.time()
        # One timer per call, not a wait_for() per read: Asterisk sends a frame every 20 ms, and a
        # wait_for() costs a task and a timer each time.
        self._tick_timer = loop.call_later(TICK_S, self._tick)
        try:
            while self.call.state is not CallState.ENDED:
                try:
                    data = await self.reader.read(READ_CHUNK_BYTES)
                except OSError as error:
                    self._end("closed", f"read error: {error}")
                    return
                self._last_read_s = loop.time()
                if not self._consume(data):
                    return
        finally:
            self._tick_timer.cancel()

    def _tick(self) -> None:
        now_s = asyncio.get_running_loop().time()
        if now_s - self._last_read_s >= self.settings.idle_timeout_s:
            self._fail_quietly("idle-timeout", f"no data for {self.settings.idle_timeout_s:g} s")
            if self._reader_task is not None:
                self._reader_task.cancel()
            return
        if self.call.active:
            self._keep_asterisk_waiting(now_s)
            self._fill_media_gap(now_s)
        self._tick_timer = asyncio.get_running_loop().call_later(TICK_S, self._tick)

    def _keep_asterisk_waiting(self, now_s: float) -> None:
        keepalive_s = self.settings.keepalive_s
        if self.settings.raw or keepalive_s <= 0 or self.writer.is_closing():
            return
        if now_s - max(self._last_read_s, self._last_write_s) >= keepalive_s:
            rate_hz = self.call.sample_rate_hz
            self.writer.write(encode_audio(bytes(2 * rate_hz * FRAME_MS // 1000), rate_hz))
            self._last_write_s = now_s
            self.counters["keepalives"] += 1

    def _fill_media_gap(self, now_s: float) -> None:
        if self._last_audio_s is None:  # nothing heard yet: no timeline to keep
            return
        gap_s = now_s - self._last_audio_s
        if gap_s < self.settings.gap_fill_after_s:
            return
        due_s = min(gap_s, self.settings.gap_fill_max_s) - self._gap_filled_s
        if due_s >= FRAME_MS / 1000:
            self.call.fill_silence(due_s)
            self._gap_filled_s += due_s
            self._audio_ready.set()

    def _consume(self, data: bytes) -> bool:
        """Decode and apply one read; False when the connection must stop."""
        try:
            if not data:
                self.decoder.finish()
                self._end("closed", "connection closed by peer")
                return False
            self.counters["bytes"] += len(data)
            for frame in self.decoder.feed(data):
                self.counters["frames", type(frame).__name__.lower()] += 1
                if not self._apply(frame):
                    return False
        except (ProtocolError, CallError) as error:
            self.counters["protocol_errors"] += 1
            self._fail_quietly(f"error: {error}", f"bad input: {error}")
            return False
        return True

    def _apply(self, frame) -> bool:
        outcome = self.call.handle(frame)
        if outcome is Outcome.STARTED:
            self._on_started()
        elif outcome is Outcome.AUDIO:
            self._last_audio_s, self._gap_filled_s = self._last_read_s, 0.0
            if self.call.g711_sized_frames == G711_WARNING_FRAMES:
                log.warning("call %s: 8 kHz frames of 160 bytes look like G.711 labelled as slin: "
                            "with Dial(AudioSocket/host:port/uuid) add /c(slin16) or /c(slin), "
                            "or the transcript is garbage", self.call.uuid)
            self._count_drops()
            self._audio_ready.set()
        elif outcome is Outcome.ENDED:
            self._end("hangup", "hangup message received")
        return self.call.active

    def _count_drops(self) -> None:
        queue = self.call.queue
        if queue.dropped_chunks != self._dropped_chunks_seen:  # the queue dropped the oldest audio
            self.counters["dropped_chunks"] += queue.dropped_chunks - self._dropped_chunks_seen
            self.counters["dropped_s"] += queue.dropped_s - self._dropped_s_seen
            self._dropped_chunks_seen, self._dropped_s_seen = queue.dropped_chunks, queue.dropped_s

    def _end(self, reason: str, detail: str) -> None:
        if self.call.end(reason):
            log.info("call %s from %s: %s", self.call.uuid or "-", self.peer, detail)
        self._audio_ready.set()

    def _fail_quietly(self, reason: str, detail: str) -> None:
        """Our side ends it: one log line, a hangup message, clean close."""
        if self.call.end(reason):
            level = logging.WARNING if reason.startswith("error") else logging.INFO
            log.log(level, "call %s from %s: %s; closing", self.call.uuid or "-", self.peer, detail)
            self._hangup_on_close = True
        self._audio_ready.set()

    async def _close_socket(self) -> None:
        if self._hangup_on_close:
            await send_hangup_and_close(self.reader, self.writer, self.settings.linger_s)
        else:
            await close_writer(self.writer)

    # ------------------------------------------------------------ start / feed
    def _on_started(self) -> None:
        uuid = self.call.uuid
        if not self._claim_uuid(uuid):
            raise CallError(f"UUID {uuid} is already in a live call")
        self._claimed = True
        self.info = CallInfo(uuid=uuid, peer=self.peer, started_at=_utc_now(),
                             sample_rate_hz=self.call.sample_rate_hz,
                             registration=Registration(uuid), dtmf=self.call.dtmf)
        self._feeder_task = asyncio.create_task(self._feed())

    async def _feed(self) -> None:
        try:
            await self._announce()
            self._claimed_registration = True
            if self._open_stream():
                await self._push_until_ended()
        except Exception as error:
            log.exception("call %s: feeding the engine failed", self.call.uuid)
            self.stop(f"error: {error}")

    async def _announce(self) -> None:
        registration = await self.directory.wait_for(self.call.uuid, self.settings.registration_wait_s)
        self.info.registration = registration or Registration(self.call.uuid)
        await self.sinks.call_started(self.info)

    async def _push_until_ended(self) -> None:
        while True:
            for chunk in self.call.queue.take_all():
                self.stream.push(chunk.pcm, chunk.sample_rate_hz)
            if not self.call.active:
                return
            self._audio_ready.clear()
            await self._audio_ready.wait()

    def _open_stream(self) -> bool:
        options = self.info.registration.options
        loop = asyncio.get_running_loop()

        def on_event(event: TranscriptEvent) -> None:  # engine thread: must not block
            loop.call_soon_threadsafe(self._events.put_nowait, event)

        try:
            self.stream = self.engine.open_stream(self.call.uuid, stream_options(self.settings, options),
                                                  on_event)
        except Exception as error:
            log.exception("call %s: could not open an engine stream", self.call.uuid)
            self.stop(f"error: engine: {error}")
            return False
        self._dispatcher_task = asyncio.create_task(self._dispatch())
        if options.mode == "ivr":
            timeout_s = options.no_input_timeout_s or self.settings.ivr_no_input_timeout_s
            self._ivr_timer = asyncio.create_task(self._ivr_no_input(timeout_s))
        return True

    # ------------------------------------------------------------ events
    async def _dispatch(self) -> None:
        while True:
            event = await self._events.get()
            if event is None:
                return
            self.info.sample_rate_hz = self.call.sample_rate_hz
            await self.sinks.transcript(self.info, event)
            if event.is_final:
                await self._on_final(event)

    async def _on_final(self, event: TranscriptEvent) -> None:
        if not event.text.strip():
            return
        self._finals += 1
        if self.info.registration.options.mode == "ivr" and self._finals == 1:
            # TRANSCRIPT must be on the channel before AudioSocket() returns to the dialplan
            await self.sinks.settle(self.info, self.settings.settle_timeout_s)
            self.stop("ivr-final")

    async def _ivr_no_input(self, timeout_s: float) -> None:
        await asyncio.sleep(timeout_s)
        if self._finals == 0:
            self.stop("ivr-no-input")

    # ------------------------------------------------------------ flush
    async def _flush(self) -> None:
        """After the socket is gone: last words to the sinks, then call_ended."""
        try:
            if self._feeder_task:
                await self._feeder_task
            await self._close_stream()
            if self.info is not None:
                self._finish_info()
                await self.sinks.call_ended(self.info)
        finally:
            if self._ivr_timer:
                self._ivr_timer.cancel()
            if self._claimed:
                self._release_uuid(self.call.uuid)
            if self._claimed_registration:
                self.directory.release(self.call.uuid)

    async def _close_stream(self) -> None:
        if self.stream is None:
            return
        try:
            await asyncio.wait_for(asyncio.wrap_future(self.stream.close()),
                                   self.settings.flush_timeout_s)
        except asyncio.TimeoutError:
            log.warning("call %s: engine did not flush within %g s", self.call.uuid,
                        self.settings.flush_timeout_s)
        except Exception:
            log.exception("call %s: closing the engine stream failed", self.call.uuid)
        self._events.put_nowait(None)
        await self._dispatcher_task

    def _finish_info(self) -> None:
        self.info.ended_at = _utc_now()
        self.info.end_reason = self.call.end_reason
        self.info.sample_rate_hz = self.call.sample_rate_hz
        queue = self.call.queue
        if queue.dropped_chunks:
            log.warning("call %s: dropped %d audio chunks (%.2f s) between network and engine",
                        self.call.uuid, queue.dropped_chunks, queue.dropped_s)
