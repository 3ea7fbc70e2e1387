"""FakeEngine: a stand-in for whisper.streaming.StreamingEngine in server tests
that do NOT check transcription.  It implements whisper.streaming.interface.Engine
(open_stream / push / close future / stop) and emits events on its own
thread like the real engine, but the "text" is synthetic: one final per
`final_every_s` seconds of audio pushed ("segment 0", "segment 1", ...).
"""
from __future__ import annotations

import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Optional

from whisper.streaming.pcm import duration_s
from whisper.streaming.types import EngineStats, StreamOptions, TranscriptEvent


def _event(stream_id: str, kind: str, index: int, start_s: float, end_s: float,
           text: str) -> TranscriptEvent:
    return TranscriptEvent(stream_id=stream_id, kind=kind, segment_index=index,
                           text=text, start_s=start_s, end_s=end_s, language="en",
                           avg_logprob=-0.1, no_speech_prob=0.01)


class FakeStream:
    def __init__(self, engine: "FakeEngine", stream_id: str, options: StreamOptions, on_event) -> None:
        self.engine, self.stream_id, self.options, self.on_event = engine, stream_id, options, on_event
        self.pushed_bytes = 0
        self.pushed_s = 0.0
        self.rates_hz: list[int] = []
        self.closed = False
        self._segment_start_s = 0.0
        self._index = 0
        self._lock = threading.Lock()

    def push(self, pcm: bytes, sample_rate_hz: int = 8000) -> None:
        with self._lock:
            if self.closed:
                raise RuntimeError("push after close")
            self.pushed_bytes += len(pcm)
            self.pushed_s += duration_s(len(pcm), sample_rate_hz)
            if not self.rates_hz or self.rates_hz[-1] != sample_rate_hz:
                self.rates_hz.append(sample_rate_hz)
            if self.pushed_s - self._segment_start_s >= self.engine.final_every_s:
                self._emit_final(self.pushed_s)

    def close(self) -> Future:
        with self._lock:
            self.closed = True
            if self.pushed_s > self._segment_start_s:
                self._emit_final(self.pushed_s)
            return self.engine.submit(lambda: None)

    def _emit_final(self, end_s: float) -> None:
        text = self.engine.text_of(self._index)
        events = [_event(self.stream_id, "final", self._index, self._segment_start_s, end_s, text)]
        if self.options.partials:
            events.insert(0, _event(self.stream_id, "partial", self._index, self._segment_start_s,
                                    end_s, text))
        for event in events:
            self.engine.submit(self.on_event, event)
        self._index += 1
        self._segment_start_s = end_s


class FakeEngine:
    def __init__(self, final_every_s: float = 1.0, flush_delay_s: float = 0.0,
                 texts: tuple[str, ...] = ()) -> None:
        """`texts`: what the finals say, in turn ("segment N" after them)."""
        self.final_every_s = final_every_s
        self.texts = texts
        self.flush_delay_s = flush_delay_s
        self.streams: dict[str, FakeStream] = {}
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fake-engine")

    def start(self) -> None:
        return None

    def text_of(self, index: int) -> str:
        return self.texts[index] if index < len(self.texts) else f"segment {index}"

    def open_stream(self, stream_id: str, options: StreamOptions = StreamOptions(), on_event=None) -> FakeStream:
        stream = FakeStream(self, stream_id, options, on_event or (lambda event: None))
        self.streams[stream_id] = stream
        return stream

    def submit(self, function, *args) -> Future:
        def run():
            if self.flush_delay_s:
                threading.Event().wait(self.flush_delay_s)
            return function(*args)
        return self._thread.submit(run)

    def is_alive(self) -> bool:
        return not self._thread._shutdown

    def stats(self) -> EngineStats:
        streams = [s for s in self.streams.values() if not s.closed]
        return EngineStats(active_streams=len(streams), queued_audio_s=0.0, lag_s=0.0, behind=False,
                           partials_skipped=0, finals_emitted=sum(s._index for s in self.streams.values()),
                           partials_emitted=0, audio_dropped_s=0.0)

    def stream(self, stream_id: str) -> Optional[FakeStream]:
        return self.streams.get(stream_id)

    def stop(self, timeout_s: float = 10.0) -> None:
        self._thread.shutdown(wait=True)
