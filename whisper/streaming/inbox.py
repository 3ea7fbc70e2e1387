"""A stream's audio queued by any thread (the caller's socket) for the scheduler thread."""
from __future__ import annotations

import collections
import threading
from typing import Deque, List, Tuple

Chunk = Tuple[bytes, int]  # int16 PCM and its sample rate in Hz


def _seconds(chunk: Chunk) -> float:
    return len(chunk[0]) / 2 / chunk[1]


def runs_by_rate(chunks: List[Chunk]) -> List[Chunk]:
    """Consecutive chunks at the same sample rate joined into one."""
    runs: List[Tuple[List[bytes], int]] = []
    for pcm, rate in chunks:
        if runs and runs[-1][1] == rate:
            runs[-1][0].append(pcm)
        else:
            runs.append(([pcm], rate))
    return [(b"".join(parts), rate) for parts, rate in runs]


class Inbox:
    """``put`` and ``close`` never block for long: the scheduler only swaps the queue out under the lock."""

    def __init__(self, stream_id: str):
        self.stream_id = stream_id
        self._chunks: Deque[Chunk] = collections.deque()
        self._queued_s = 0.0
        self._closing = False
        self._lock = threading.Lock()

    def put(self, pcm: bytes, sample_rate_hz: int) -> None:
        with self._lock:
            if self._closing:
                raise RuntimeError(f"stream {self.stream_id} is closed")
            self._chunks.append((pcm, sample_rate_hz))
            self._queued_s += _seconds(self._chunks[-1])

    def close(self) -> None:
        with self._lock:
            self._closing = True

    @property
    def queued_s(self) -> float:
        with self._lock:
            return self._queued_s

    def take(self, max_s: float) -> Tuple[List[Chunk], float, bool]:
        """Everything queued, in runs of one sample rate, with (only under extreme overload) the oldest
        beyond ``max_s`` dropped; returns (runs, seconds dropped, whether the stream is closing)."""
        with self._lock:
            chunks, self._chunks = list(self._chunks), collections.deque()
            self._queued_s = 0.0
            closing = self._closing
        dropped_s = 0.0
        total_s = sum(_seconds(chunk) for chunk in chunks)
        while chunks and total_s > max_s:
            oldest_s = _seconds(chunks.pop(0))
            total_s -= oldest_s
            dropped_s += oldest_s
        return runs_by_rate(chunks), dropped_s, closing
