"""One live stream's state on the engine's scheduler thread: audio in, utterances and decode jobs out.

A stream resamples what it is pushed to 16 kHz, classifies 20 ms frames with the VAD, lets the
endpointer cut utterances, and keeps just the audio its open utterance (or the next one's pre-roll)
can still need. It says what it wants decoded (finals, speculative finals, partials) as ``Job``s;
the engine decides when and batches them.
"""
from __future__ import annotations

import collections
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Deque, Dict, List, Optional, Tuple

import numpy as np

from .audio import SAMPLE_RATE_HZ, StreamingResampler, int16_to_float
from .decoding import DecodingResult
from .endpointing import Boundary, Endpointer
from .stream_types import EventCallback, StreamOptions
from .vad import FRAME_SAMPLES, VoiceActivityDetector

if TYPE_CHECKING:
    from .streaming import StreamingEngine

PAUSE_FRAMES = 10  # 200 ms without speech: the caller paused, a final may be next


@dataclass
class Job:
    """One window to decode: a finished utterance or the open one's audio so far."""

    stream: "Stream"
    kind: str  # "final" | "partial"
    segment_index: int
    audio: np.ndarray  # 16 kHz float32
    start_s: float
    had_partial: bool = False  # a partial of this segment went out, so its final must too
    frames: Tuple[int, int] = (0, 0)  # [start, end) in stream frames: the same audio gives the same result
    speculative: bool = False  # decoded during the trailing silence, before the utterance is over
    result: Optional[DecodingResult] = None  # already decoded (speculatively)
    ready_at: float = field(default_factory=time.monotonic)


def _runs_by_rate(chunks: List[Tuple[bytes, int]]) -> List[Tuple[bytes, int]]:
    """Consecutive chunks at the same sample rate joined into one."""
    runs: List[Tuple[List[bytes], int]] = []
    for pcm, rate in chunks:
        if runs and runs[-1][1] == rate:
            runs[-1][0].append(pcm)
        else:
            runs.append(([pcm], rate))
    return [(b"".join(parts), rate) for parts, rate in runs]


class Stream:
    """One live audio stream. ``push`` and ``close`` are safe from any thread and never block."""

    def __init__(self, engine: "StreamingEngine", stream_id: str, options: StreamOptions, on_event: EventCallback):
        self.engine, self.id, self.options, self.on_event = engine, stream_id, options, on_event
        self._inbox: Deque[Tuple[bytes, int]] = collections.deque()
        self._inbox_s = 0.0
        self._lock = threading.Lock()
        self.close_future: Future = Future()
        self._closing = False
        # Everything below belongs to the scheduler thread.
        self._resampler: Optional[StreamingResampler] = None
        self._vad = VoiceActivityDetector(engine.options.vad)
        self._endpointer = Endpointer(engine.options.endpoint)
        self._audio = np.zeros(0, dtype=np.float32)  # 16 kHz samples from _audio_start_frame on
        self._audio_start_frame = 0
        self._pending_frame_samples = np.zeros(0, dtype=np.float32)
        self.finals: Deque[Job] = collections.deque()
        self.speculated: Dict[Tuple[int, int], DecodingResult] = {}  # frames -> result, for the open utterance
        self.segment_index = 0
        self._partial_sent = False  # a partial went out for the current segment
        self._last_partial_frame = 0
        self._previous_partial_words: List[str] = []
        self.flushed = False

    # -- called from any thread -------------------------------------------------------------
    def push(self, pcm: bytes, sample_rate_hz: int = 8000) -> None:
        """Queue signed 16-bit little-endian mono PCM (or a float32 numpy array) at ``sample_rate_hz``."""
        if isinstance(pcm, np.ndarray):
            pcm = (np.clip(pcm, -1.0, 1.0) * 32767).astype("<i2").tobytes()
        if not pcm:
            return
        with self._lock:
            if self._closing:
                raise RuntimeError(f"stream {self.id} is closed")
            self._inbox.append((bytes(pcm), sample_rate_hz))
            self._inbox_s += len(pcm) / 2 / sample_rate_hz
        self.engine._wake()

    def close(self) -> Future:
        """Flush: the open utterance becomes final. The future resolves after the last final event."""
        with self._lock:
            self._closing = True
        self.engine._wake()
        return self.close_future

    # -- scheduler thread -------------------------------------------------------------------
    def drain(self) -> Tuple[int, float]:
        """Process queued audio; returns (samples processed at 16 kHz, seconds of audio dropped)."""
        with self._lock:
            chunks, self._inbox = list(self._inbox), collections.deque()
            self._inbox_s = 0.0
            closing = self._closing
        dropped_s = 0.0
        limit_s = self.engine.options.max_pending_audio_s
        total_s = sum(len(c) / 2 / rate for c, rate in chunks)
        while chunks and total_s > limit_s:  # only under extreme overload: drop the oldest audio
            pcm, rate = chunks.pop(0)
            total_s -= len(pcm) / 2 / rate
            dropped_s += len(pcm) / 2 / rate
        processed = 0
        for pcm, rate in _runs_by_rate(chunks):  # one resample and one VAD pass per run, not per frame
            processed += self._ingest(self._resample(int16_to_float(pcm[: len(pcm) // 2 * 2]), rate))
        if closing and not self.flushed:
            self._flush()
        return processed, dropped_s

    def _resample(self, samples: np.ndarray, rate_hz: int) -> np.ndarray:
        if self._resampler is None or self._resampler.from_hz != rate_hz:
            tail = self._resampler.flush() if self._resampler is not None else np.zeros(0, np.float32)
            self._resampler = StreamingResampler(rate_hz)
            return np.concatenate([tail, self._resampler.process(samples)])
        return self._resampler.process(samples)

    def _ingest(self, samples: np.ndarray) -> int:
        samples = np.concatenate([self._pending_frame_samples, samples])
        n_frames = len(samples) // FRAME_SAMPLES
        self._pending_frame_samples = samples[n_frames * FRAME_SAMPLES :]
        if n_frames == 0:
            return 0
        frames = samples[: n_frames * FRAME_SAMPLES]
        self._audio = np.concatenate([self._audio, frames])
        is_speech, level = self._vad.classify(frames.reshape(n_frames, FRAME_SAMPLES))
        for boundary in self._endpointer.push(is_speech, level):
            self._finish(boundary)
        self._trim_idle_audio()
        return frames.size

    def _trim_idle_audio(self) -> None:
        """Keep only what the open utterance (or a future one's pre-roll) can still need."""
        keep_from = self._endpointer.start_frame
        if keep_from is None:
            keep_from = self._endpointer.frame - round(self.engine.options.endpoint.pre_roll_s * 50) - 10
        drop_frames = keep_from - self._audio_start_frame
        if drop_frames > 0:
            self._audio = self._audio[drop_frames * FRAME_SAMPLES :]
            self._audio_start_frame += drop_frames

    def _slice(self, start_frame: int, end_frame: int) -> np.ndarray:
        begin = (start_frame - self._audio_start_frame) * FRAME_SAMPLES
        return self._audio[max(0, begin) : (end_frame - self._audio_start_frame) * FRAME_SAMPLES]

    def _finish(self, boundary: Boundary) -> None:
        audio = self._slice(boundary.start_frame, boundary.end_frame)
        start_s = boundary.start_frame * FRAME_SAMPLES / SAMPLE_RATE_HZ
        frames = (boundary.start_frame, boundary.end_frame)
        self.finals.append(Job(self, "final", self.segment_index, audio, start_s, self._partial_sent, frames,
                                result=self.speculated.get(frames)))  # fmt: skip
        self.segment_index += 1
        self._partial_sent = False
        self._previous_partial_words = []
        self.speculated = {}
        self._last_partial_frame = boundary.end_frame

    def _flush(self) -> None:
        tail = self._pending_frame_samples
        if self._resampler is not None:
            tail = np.concatenate([tail, self._resampler.flush()])
        if tail.size:  # pad the last partial frame with silence so it is heard
            padded = np.concatenate([tail, np.zeros(-tail.size % FRAME_SAMPLES, np.float32)])
            self._pending_frame_samples = np.zeros(0, np.float32)
            self._ingest(padded)
        boundary = self._endpointer.flush()
        if boundary is not None:
            self._finish(boundary)
        self.flushed = True

    def speculative_job(self, after_frames: int) -> Optional[Job]:
        """The open utterance as it will end if the caller stays silent: decoding it during the
        trailing silence means its final goes out the moment the endpointer closes it."""
        expected = self._endpointer.expected_end()
        if expected is None or self.flushed or self._endpointer.frame - self._endpointer.last_speech_frame < after_frames:
            return None
        if expected in self.speculated or self._endpointer.frame < expected[1]:
            return None
        start, end = expected
        return Job(self, "final", self.segment_index, self._slice(start, end), start * FRAME_SAMPLES / SAMPLE_RATE_HZ,
                    frames=expected, speculative=True)  # fmt: skip

    def accept_speculation(self, job: Job, result: DecodingResult) -> None:
        """A speculative decode is back: it is the result of a final that has ended as expected (or
        of one that may still), unless the caller spoke again."""
        for final in self.finals:
            if final.frames == job.frames and final.result is None:
                final.result = result
                return
        if job.segment_index == self.segment_index:
            self.speculated[job.frames] = result

    def partial_job(self, now_frame_interval: int, min_frames: int) -> Optional[Job]:
        """The open utterance's audio, if it is due a partial."""
        start = self._endpointer.start_frame
        if start is None or not self.options.partials or self.flushed:
            return None
        end = self._endpointer.frame
        if end - start < min_frames or end - self._last_partial_frame < now_frame_interval:
            return None
        if self.final_imminent:
            return None  # the caller paused: its final is probably next, so leave it the compute
        return Job(self, "partial", self.segment_index, self._slice(start, end), start * FRAME_SAMPLES / SAMPLE_RATE_HZ,
                   frames=(start, end))  # fmt: skip

    @property
    def final_imminent(self) -> bool:
        """In an utterance whose caller has paused: the endpointer may close it any moment."""
        endpointer = self._endpointer
        return endpointer.in_utterance and endpointer.frame - endpointer.last_speech_frame > PAUSE_FRAMES

    def mark_partial(self, job: Job) -> None:
        """A partial of the audio up to ``job``'s end was decoded: the next is due an interval later."""
        self._last_partial_frame = max(self._last_partial_frame, job.frames[1])

    def agreed_words(self, words: List[str]) -> int:
        """How many leading words this partial shares with the previous one (LocalAgreement-2)."""
        previous, self._previous_partial_words = self._previous_partial_words, words
        normalise = lambda word: "".join(ch for ch in word.lower() if ch.isalnum())  # noqa: E731
        count = 0
        for old, new in zip(previous, words):
            if normalise(old) != normalise(new):
                break
            count += 1
        return count

    def commit(self, job: Job, end_s: float) -> Optional[Job]:
        """Turn the open utterance's audio up to ``end_s`` (stream clock) into a final job."""
        frame = int(end_s * SAMPLE_RATE_HZ) // FRAME_SAMPLES
        boundary = self._endpointer.commit_until(frame)
        if boundary is None:
            return None
        self._partial_sent = True  # the committed words were shown as a partial
        self._finish(boundary)
        return self.finals.pop()

    @property
    def done(self) -> bool:
        return self.flushed and not self.finals

    @property
    def queued_audio_s(self) -> float:
        with self._lock:
            return self._inbox_s
