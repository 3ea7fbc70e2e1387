"""Per-connection call state, as pure logic (no sockets, no asyncio, no engine).

The server feeds decoded frames to `Call.handle()`; the Call tracks the UUID,
sample rate (from the audio kind; it may change mid-call), DTMF digits, and a
bounded audio queue between the network and the engine.
"""
from __future__ import annotations

import enum
import uuid as uuid_lib
from typing import Optional

from whisper.streaming.pcm import AudioChunk, AudioQueue, silence

from .protocol import Audio, Dtmf, ErrorFrame, Frame, Hangup, UuidFrame

DEFAULT_SAMPLE_RATE_HZ = 8000
G711_FRAME_BYTES = 160
# Audio a call may hold between the network and the engine; it only fills while the call waits
# for its registration or the engine stalls.
AUDIO_QUEUE_MAX_S = 10.0
# What a peer can make a call keep (each record is also stored and exported): far above any
# real call (a card number and a few menus are tens of digits), far below what a flood sends.
MAX_DTMF_RECORDS = 512
MAX_RATE_CHANGES = 64


class CallError(Exception):
    """The client broke the call flow (e.g. audio before the UUID)."""


class CallState(enum.Enum):
    AWAITING_UUID = "awaiting-uuid"
    ACTIVE = "active"
    ENDED = "ended"


class Outcome(enum.Enum):
    """What the server should do after a frame."""

    NOTHING = "nothing"
    STARTED = "started"  # UUID known: open the engine stream, tell the sinks
    AUDIO = "audio"  # audio was queued
    PEER_ERROR = "peer-error"  # Asterisk reported an error (peer_error_code)
    ENDED = "ended"  # the client hung up


class Call:
    """One AudioSocket connection's call.

    Times (`dtmf`, `rate_changes`) are seconds of audio received so far, the
    same clock as the engine's transcript times.
    """

    def __init__(self, peer: str, *, queue_max_s: float = AUDIO_QUEUE_MAX_S) -> None:
        self.peer = peer
        self.state = CallState.AWAITING_UUID
        self.uuid: Optional[str] = None
        self.sample_rate_hz = DEFAULT_SAMPLE_RATE_HZ
        self.rate_changes: list[tuple[float, int]] = []
        self.dtmf: list[tuple[float, str]] = []
        self.dtmf_dropped = 0  # beyond MAX_DTMF_RECORDS
        self.audio_s = 0.0
        # 8 kHz frames of 160 bytes: 20 ms of G.711 as Dial(AudioSocket/...) without /c(slin...)
        # sends it, labelled 0x10 (or 10 ms of real slin from a 10 ms ptime phone)
        self.g711_sized_frames = 0
        self.end_reason: Optional[str] = None
        self.peer_error_code: Optional[int] = None
        self.queue = AudioQueue(queue_max_s)

    @classmethod
    def raw(cls, peer: str, *, queue_max_s: float = AUDIO_QUEUE_MAX_S) -> "Call":
        """A raw-mode call: no UUID on the wire, so one is generated."""
        call = cls(peer, queue_max_s=queue_max_s)
        call._start(str(uuid_lib.uuid4()))
        return call

    @property
    def active(self) -> bool:
        return self.state is CallState.ACTIVE

    def handle(self, frame: Frame) -> Outcome:
        """Apply one decoded frame; raises CallError on a flow violation."""
        if self.state is CallState.ENDED:
            return Outcome.NOTHING
        if isinstance(frame, UuidFrame):
            return self._on_uuid(frame.uuid)
        if isinstance(frame, Hangup):
            self.end("hangup")
            return Outcome.ENDED
        if self.state is CallState.AWAITING_UUID:
            raise CallError(f"{type(frame).__name__.lower()} message before the UUID message")
        if isinstance(frame, Audio):
            self._on_audio(frame)
            return Outcome.AUDIO
        if isinstance(frame, Dtmf):
            if len(self.dtmf) < MAX_DTMF_RECORDS:
                self.dtmf.append((round(self.audio_s, 3), frame.digit))
            else:
                self.dtmf_dropped += 1
            return Outcome.NOTHING
        if isinstance(frame, ErrorFrame):
            self.peer_error_code = frame.code
            return Outcome.PEER_ERROR
        raise CallError(f"unexpected frame {frame!r}")

    def end(self, reason: str) -> bool:
        """Mark the call ended; the first reason wins.  True if this call ended it."""
        if self.state is CallState.ENDED:
            return False
        self.state = CallState.ENDED
        self.end_reason = reason
        return True

    def fill_silence(self, duration_s: float) -> None:
        """Queue silence for a stretch of wall-clock time in which no media arrived."""
        pcm = silence(duration_s, self.sample_rate_hz)
        if pcm:
            chunk = AudioChunk(pcm, self.sample_rate_hz)
            self.audio_s += chunk.duration_s
            self.queue.put(chunk)

    def _on_uuid(self, call_uuid: str) -> Outcome:
        if self.state is not CallState.AWAITING_UUID:
            raise CallError("second UUID message on one connection")
        self._start(call_uuid)
        return Outcome.STARTED

    def _start(self, call_uuid: str) -> None:
        self.uuid = call_uuid
        self.state = CallState.ACTIVE

    def _on_audio(self, frame: Audio) -> None:
        if frame.sample_rate_hz != self.sample_rate_hz:
            if len(self.rate_changes) < MAX_RATE_CHANGES:
                self.rate_changes.append((round(self.audio_s, 3), frame.sample_rate_hz))
            self.sample_rate_hz = frame.sample_rate_hz
        if frame.sample_rate_hz == 8000 and len(frame.pcm) == G711_FRAME_BYTES:
            self.g711_sized_frames += 1
        chunk = AudioChunk(frame.pcm, frame.sample_rate_hz)
        self.audio_s += chunk.duration_s
        self.queue.put(chunk)
