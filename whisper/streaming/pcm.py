"""Signed linear audio (slin): 16-bit little-endian mono PCM, as AudioSocket carries it and the
engine takes it. The one home of its frame (Asterisk sends one per 20 ms, the VAD classifies
16 kHz audio in frames of the same length), its duration, how chunks of it are joined, and the
bounded queue every stage of the audio's way keeps it in (see the rule in whisper.streaming).
Pure Python: the bridge's process imports it without torch or numpy.
"""
from __future__ import annotations

import itertools
import operator
from collections import deque
from dataclasses import dataclass
from typing import Hashable, Iterable, List, Tuple, TypeVar

BYTES_PER_SAMPLE = 2
FRAME_MS = 20
FRAMES_PER_S = 1000 // FRAME_MS

Key = TypeVar("Key", bound=Hashable)


def duration_s(byte_count: int, sample_rate_hz: int) -> float:
    return byte_count / (BYTES_PER_SAMPLE * sample_rate_hz)


def frame_bytes(sample_rate_hz: int, frame_ms: int = FRAME_MS) -> int:
    """Bytes of one frame of `frame_ms` at `sample_rate_hz` (320 for 20 ms at 8 kHz)."""
    return sample_rate_hz * frame_ms // 1000 * BYTES_PER_SAMPLE


def silence(seconds: float, sample_rate_hz: int) -> bytes:
    return bytes(BYTES_PER_SAMPLE * int(seconds * sample_rate_hz))


def joined_runs(chunks: Iterable[Tuple[Key, bytes]]) -> List[Tuple[Key, bytes]]:
    """Consecutive chunks of one key (a sample rate; a stream and its rate) as one chunk, in order.
    Linear: each run's audio is joined once."""
    return [(key, b"".join(pcm for _, pcm in run)) for key, run in itertools.groupby(chunks, operator.itemgetter(0))]


@dataclass(frozen=True)
class AudioChunk:
    pcm: bytes
    sample_rate_hz: int

    @property
    def duration_s(self) -> float:
        return duration_s(len(self.pcm), self.sample_rate_hz)


class AudioQueue:
    """Bounded FIFO of audio chunks, in seconds of audio: past ``max_s`` the oldest chunks are
    dropped (never the newest) and counted. Dropping the oldest keeps the transcript close to live
    if whatever reads the queue ever stalls; the drop counters make the loss visible. Not
    thread-safe: its owner locks (or owns it on one thread)."""

    def __init__(self, max_s: float) -> None:
        self.max_s = max_s
        self._chunks: deque[AudioChunk] = deque()
        self._queued_s = 0.0
        self.dropped_chunks = 0
        self.dropped_s = 0.0
        self._reported = (0, 0.0)  # the drop totals new_drops() last returned

    def __len__(self) -> int:
        return len(self._chunks)

    @property
    def queued_s(self) -> float:
        return self._queued_s

    def put(self, chunk: AudioChunk) -> None:
        self._chunks.append(chunk)
        self._queued_s += chunk.duration_s
        while self._queued_s > self.max_s and len(self._chunks) > 1:
            dropped = self._chunks.popleft()
            self._queued_s -= dropped.duration_s
            self.dropped_chunks += 1
            self.dropped_s += dropped.duration_s

    def new_drops(self) -> tuple[int, float]:
        """(chunks, seconds) dropped since the last call; the totals stay in dropped_*."""
        chunks, seconds = self._reported
        self._reported = (self.dropped_chunks, self.dropped_s)
        return self.dropped_chunks - chunks, self.dropped_s - seconds

    def take_all(self) -> list[AudioChunk]:
        chunks = list(self._chunks)
        self._chunks.clear()
        self._queued_s = 0.0
        return chunks
