"""One AudioSocket connection, from its first byte to its close.

The reader task decodes what Asterisk sends into a pure `Call`; once the call's UUID is known, a
`Transcription` takes its audio to the engine and its transcripts to the sinks. One timer
(`_tick`) keeps the wall clock: the idle timeout, keep-alive silence to Asterisk, and silence for
the engine while no media arrives.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Callable, Optional

from whisper.streaming.pcm import FRAME_MS, silence

from .call import Call, CallError, CallState, Outcome
from .connection import (READ_CHUNK_BYTES, close_writer, peer_label, send_hangup_and_close,
                         set_nodelay)
from .live_uuids import LiveUuids
from .media_gaps import GapFiller
from .protocol import (Frame, FrameDecoder, ProtocolError, RawAudioDecoder, describe_error,
                       encode_audio)
from .settings import SessionSettings
from .stats import ConnectionStats
from .transcription import Transcription

log = logging.getLogger(__name__)

TICK_S = 0.25
G711_WARNING_FRAMES = 25  # half a second of them


class Session:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *,
                 settings: SessionSettings, stats: ConnectionStats, live_uuids: LiveUuids,
                 new_transcription: Callable[..., Transcription],
                 may_start: Callable[[], Optional[str]] = lambda: None) -> None:
        """`new_transcription(call, stop=...)` makes the call's Transcription once its UUID is known;
        `may_start()` then says why it may not start (a full bridge), or None; `stats` are the
        server's, shared by all its sessions."""
        self._may_start = may_start
        self.reader, self.writer = reader, writer
        self.settings, self.stats = settings, stats
        self._live_uuids, self._new_transcription = live_uuids, new_transcription
        self.peer = peer_label(writer)
        self.call = Call.raw(self.peer) if settings.raw else Call(self.peer)
        self.decoder = RawAudioDecoder() if settings.raw else FrameDecoder(settings.max_frame_bytes)
        self.transcription: Optional[Transcription] = None
        self._gaps = GapFiller()
        self._reader_task: Optional[asyncio.Task] = None
        self._tick_timer: Optional[asyncio.TimerHandle] = None
        self._last_read_s = self._last_write_s = 0.0  # _last_read_s: the last whole frame
        self._connected_s = 0.0
        self._hangup_on_close = False
        self._uuid_claimed = False

    async def run(self) -> None:
        set_nodelay(self.writer)
        if self.call.active:  # raw mode: the call starts with the connection
            self._start()
        self._reader_task = asyncio.create_task(self._read_loop())
        await asyncio.wait([self._reader_task])
        await self._close_socket()
        await self._finish()

    def stop(self, reason: str) -> None:
        """End the call from our side (shutdown, IVR, a failure): hangup frame, close, flush."""
        if self.call.end(reason):
            self._hangup_on_close = True
            log.info("call %s from %s: ending (%s)", self.call.uuid or "-", self.peer, reason)
        self._wake_feeder()
        if self._reader_task:
            self._reader_task.cancel()

    # ------------------------------------------------------------ reading
    async def _read_loop(self) -> None:
        loop = asyncio.get_running_loop()
        self._last_read_s = self._last_write_s = self._connected_s = loop.time()
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
                if not self._consume(data):
                    return
        finally:
            self._tick_timer.cancel()

    def _consume(self, data: bytes) -> bool:
        """Decode and apply one read; False when the connection must stop."""
        try:
            if not data:
                self.decoder.finish()
                self._end("closed", "connection closed by peer")
                return False
            self.stats.received_bytes += len(data)
            read_s = asyncio.get_running_loop().time()  # once per read, as before, not per frame
            for frame in self.decoder.feed(data):
                # the idle timeout counts whole messages: a byte now and then keeps nothing open
                self._last_read_s = read_s
                self.stats.count_frame(frame)
                if not self._apply(frame):
                    return False
        except (ProtocolError, CallError) as error:
            self.stats.protocol_errors += 1
            self._fail_quietly(f"error: {error}", f"bad input: {error}")
            return False
        return True

    def _apply(self, frame: Frame) -> bool:
        outcome = self.call.handle(frame)
        if outcome is Outcome.STARTED:
            self._start()
        elif outcome is Outcome.AUDIO:
            self._on_audio()
        elif outcome is Outcome.PEER_ERROR:
            log.warning("call %s from %s: Asterisk sent an error message %s", self.call.uuid,
                        self.peer, describe_error(self.call.peer_error_code))
        elif outcome is Outcome.ENDED:
            self._end("hangup", "hangup message received")
        return self.call.active

    def _on_audio(self) -> None:
        self._gaps.heard_audio(self._last_read_s)
        if self.call.g711_sized_frames == G711_WARNING_FRAMES:
            log.warning("call %s: 8 kHz frames of 160 bytes look like G.711 labelled as slin: "
                        "with Dial(AudioSocket/host:port/uuid) add /c(slin16) or /c(slin), "
                        "or the transcript is garbage", self.call.uuid)
        chunks, seconds = self.call.queue.new_drops()
        if chunks:  # the queue dropped its oldest audio
            self.stats.count_drops(chunks, seconds)
        self._wake_feeder()

    # ------------------------------------------------------------ the wall clock
    def _tick(self) -> None:
        now_s = asyncio.get_running_loop().time()
        if (not self.started
                and now_s - self._connected_s >= self.settings.handshake_timeout_s):
            self.stats.handshake_timeouts += 1
            self._fail_quietly("handshake-timeout",
                               f"no UUID within {self.settings.handshake_timeout_s:g} s")
            self._reader_task.cancel()
            return
        if now_s - self._last_read_s >= self.settings.idle_timeout_s:
            self._fail_quietly("idle-timeout", f"no data for {self.settings.idle_timeout_s:g} s")
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
            self.writer.write(encode_audio(silence(FRAME_MS / 1000, rate_hz), rate_hz))
            self._last_write_s = now_s
            self.stats.keepalives_sent += 1

    def _fill_media_gap(self, now_s: float) -> None:
        due_s = self._gaps.silence_due_s(now_s)
        if due_s:
            self.call.fill_silence(due_s)
            self._wake_feeder()

    # ------------------------------------------------------------ start and end
    @property
    def started(self) -> bool:
        """The call has its UUID and holds a call slot."""
        return self.transcription is not None

    def _start(self) -> None:
        refusal = self._may_start()
        if refusal is not None:
            self._fail_quietly("refused", refusal)
            return
        if not self._live_uuids.claim(self.call.uuid):
            raise CallError(f"UUID {self.call.uuid} is already in a live call")
        self._uuid_claimed = True
        self.transcription = self._new_transcription(self.call, stop=self.stop)
        self.transcription.start()

    def _wake_feeder(self) -> None:
        if self.transcription is not None:
            self.transcription.wake()

    def _end(self, reason: str, detail: str) -> None:
        if self.call.end(reason):
            log.info("call %s from %s: %s", self.call.uuid or "-", self.peer, detail)
        self._wake_feeder()

    def _fail_quietly(self, reason: str, detail: str) -> None:
        """Our side ends it: one log line, a hangup message, clean close."""
        if self.call.end(reason):
            level = logging.WARNING if reason.startswith(("error", "refused")) else logging.INFO
            log.log(level, "call %s from %s: %s; closing", self.call.uuid or "-", self.peer, detail)
            self._hangup_on_close = True
        self._wake_feeder()

    async def _close_socket(self) -> None:
        if self._hangup_on_close:
            await send_hangup_and_close(self.reader, self.writer)
        else:
            await close_writer(self.writer)

    async def _finish(self) -> None:
        try:
            if self.transcription is not None:
                await self.transcription.finish()
        finally:
            if self._uuid_claimed:
                self._live_uuids.release(self.call.uuid)
