"""A pool's stream that outlives its worker: PoolStream (whisper/streaming/pool.py hands it out).

It forwards to a RemoteStream on one worker process. When that worker dies (EngineDied: killed,
crashed, or killed by the pool because it hung), the pool opens the stream again on a live
worker (or on the next worker it respawns), and the stream goes on there: its events keep their
numbering and clock (segment indexes continue after the last final, times count all audio
pushed), so a listener sees one stream. Lost: the audio the dead worker had not made final (the
open utterance, at most its queue) and what is pushed while no worker is running (counted).
A stream that was closing when its worker died ends at once, with its finals kept.
"""
from __future__ import annotations

import dataclasses
import logging
import threading
from concurrent.futures import Future
from typing import Callable, Optional

from .pcm import duration_s
from .process import EngineDied, RemoteStream
from .types import EventCallback, StreamOptions, TranscriptEvent

log = logging.getLogger(__name__)


def shifted(event: TranscriptEvent, index_base: int, time_base_s: float) -> TranscriptEvent:
    """The event of a re-opened stream in the whole stream's numbering and clock."""
    if not index_base and not time_base_s:
        return event
    words = tuple(dataclasses.replace(w, start_s=w.start_s + time_base_s, end_s=w.end_s + time_base_s)
                  for w in event.words)
    return dataclasses.replace(event, segment_index=event.segment_index + index_base,
                               start_s=event.start_s + time_base_s, end_s=event.end_s + time_base_s,
                               words=words)


class PoolStream:
    def __init__(self, stream_id: str, stream_options: StreamOptions, on_event: EventCallback,
                 on_orphaned: Callable[["PoolStream"], None],
                 on_done: Callable[["PoolStream"], None]) -> None:
        """`on_orphaned(stream)`: its worker died and it needs another; `on_done`: it has ended."""
        self.id, self.stream_options = stream_id, stream_options
        self.close_future: Future = Future()
        self.moves = 0  # times it was opened again on another worker
        self.dropped_s = 0.0  # audio pushed while it had no worker
        self._on_event, self._on_orphaned, self._on_done = on_event, on_orphaned, on_done
        self._lock = threading.Lock()
        self._remote: Optional[RemoteStream] = None
        self._closing = False
        self._opened = False
        self._next_index = 0  # after the last final delivered
        self._pushed_s = 0.0

    def attach(self, open_remote: Callable[[EventCallback], RemoteStream]) -> None:
        """Opens it (again) on a worker: `open_remote(callback)` opens the worker's stream."""
        with self._lock:
            index_base, time_base_s = self._next_index, self._pushed_s
            self.moves += self._opened
            self._opened = True
            remote = open_remote(lambda event: self._deliver(event, index_base, time_base_s))
            self._remote = remote
            closing = self._closing
        remote.close_future.add_done_callback(lambda future: self._remote_done(remote, future))
        if closing:  # closed meanwhile
            remote.close()

    def push(self, pcm: bytes, sample_rate_hz: int = 8000) -> None:
        with self._lock:
            self._pushed_s += duration_s(len(pcm), sample_rate_hz)
            remote = self._remote
            if remote is None:
                self.dropped_s += duration_s(len(pcm), sample_rate_hz)
                return
        remote.push(pcm, sample_rate_hz)

    def close(self) -> Future:
        """Resolves after the last final; at once, with the finals it has, while it has no
        worker (its worker died and none has taken it yet)."""
        with self._lock:
            self._closing = True
            remote = self._remote
        if remote is None:
            self._finish(None)
        else:
            remote.close()
        return self.close_future

    def _deliver(self, event: TranscriptEvent, index_base: int, time_base_s: float) -> None:
        event = shifted(event, index_base, time_base_s)
        if event.is_final:
            self._next_index = max(self._next_index, event.segment_index + 1)
        self._on_event(event)

    def _remote_done(self, remote: RemoteStream, future: Future) -> None:
        with self._lock:
            if remote is not self._remote:
                return
            error = future.exception()
            died = isinstance(error, EngineDied)
            if died:
                self._remote = None
            closing = self._closing
        if died and not closing:
            log.warning("stream %s: its engine worker died; opening it on another", self.id)
            self._on_orphaned(self)
            return
        if died:
            log.warning("stream %s: its engine worker died while it closed; its last utterance "
                        "is lost, its finals are kept", self.id)
            self._finish(None)
        else:
            self._finish(error)

    def _finish(self, error: Optional[BaseException]) -> None:
        if self.close_future.done():
            return
        self._on_done(self)
        if error is None:
            self.close_future.set_result(None)
        else:
            self.close_future.set_exception(error)
