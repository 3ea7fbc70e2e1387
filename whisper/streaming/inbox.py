"""A stream's audio queued by any thread (the caller's socket) for the scheduler thread.

Bounded as every queue on the audio's way (pcm.AudioQueue): past ``max_s`` the oldest is dropped
as new audio comes, and counted; only under extreme overload, since the scheduler takes everything
queued every tick.
"""
from __future__ import annotations

import threading
from typing import List, Tuple

from .pcm import AudioChunk, AudioQueue, joined_runs

Run = Tuple[int, bytes]  # sample rate in Hz, and int16 PCM at that rate


class Inbox:
    """``put`` and ``close`` never block for long: the scheduler only swaps the queue out under the lock."""

    def __init__(self, stream_id: str, max_s: float):
        self.stream_id = stream_id
        self._queue = AudioQueue(max_s)
        self._closing = False
        self._lock = threading.Lock()

    def put(self, pcm: bytes, sample_rate_hz: int) -> None:
        with self._lock:
            if self._closing:
                raise RuntimeError(f"stream {self.stream_id} is closed")
            self._queue.put(AudioChunk(pcm, sample_rate_hz))

    def close(self) -> None:
        with self._lock:
            self._closing = True

    @property
    def queued_s(self) -> float:
        with self._lock:
            return self._queue.queued_s

    def take(self) -> Tuple[List[Run], float, bool]:
        """Everything queued, in runs of one sample rate; returns (runs, seconds dropped since the
        last take, whether the stream is closing)."""
        with self._lock:
            chunks = self._queue.take_all()
            _, dropped_s = self._queue.new_drops()
            closing = self._closing
        return joined_runs((chunk.sample_rate_hz, chunk.pcm) for chunk in chunks), dropped_s, closing
