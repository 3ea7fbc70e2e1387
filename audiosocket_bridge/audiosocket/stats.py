"""Counts over every AudioSocket connection a server has had; the metrics read them."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from .protocol import Frame


@dataclass
class ConnectionStats:
    connections: int = 0  # accepted or refused
    connections_refused: int = 0  # max-calls reached
    received_bytes: int = 0
    frames_received: Counter[str] = field(default_factory=Counter)  # by frame_kind()
    protocol_errors: int = 0  # connections ended for bad input
    audio_dropped_chunks: int = 0  # the call's queue to the engine was full
    audio_dropped_s: float = 0.0
    keepalives_sent: int = 0
    handshake_timeouts: int = 0  # connections closed for sending no UUID in time

    def count_frame(self, frame: Frame) -> None:
        self.frames_received[frame_kind(frame)] += 1

    def count_drops(self, chunks: int, seconds: float) -> None:
        self.audio_dropped_chunks += chunks
        self.audio_dropped_s += seconds


def frame_kind(frame: Frame) -> str:
    """The metrics label of a frame: "audio", "uuidframe", "dtmf", "hangup" or "errorframe"."""
    return type(frame).__name__.lower()
