"""Streaming transcription: many live streams served by one model on one scheduler thread.

Each stream's audio goes through resampling, voice activity detection and endpointing on the
scheduler thread (``push`` only queues bytes). Every tick the scheduler batches the pending work of
all streams through the encoder and decoder: finished utterances ("finals") first, then the open
utterances that are due a "partial". When the model can't keep up, partials are thinned (never
finals) and ``stats().behind`` says so.
"""
from __future__ import annotations

import collections
import logging
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from typing import Deque, Dict, List, Optional, Tuple

import numpy as np
import torch

from .audio import HOP_LENGTH, N_SAMPLES, SAMPLE_RATE_HZ, StreamingResampler, int16_to_float, log_mel_spectrogram, pad_or_trim
from .decoding import DecodingOptions, DecodingResult, DecodingTask
from .endpointing import Boundary, EndpointOptions, Endpointer
from .stream_guards import GuardOptions, needs_fallback, rejection_reason
from .timing import APPEND_PUNCTUATIONS, PREPEND_PUNCTUATIONS, align_words, find_alignment, merge_punctuations
from .stream_types import EventCallback, StreamOptions, TranscriptEvent, Word
from .vad import FRAME_SAMPLES, VadOptions, VoiceActivityDetector

log = logging.getLogger(__name__)

_PAUSE_FRAMES = 10  # 200 ms without speech
_BUDGET_WINDOW_S = 2.0
_SPECULATE_FRAMES = 15  # after 300 ms of silence, decode the utterance as it will end


@dataclass(frozen=True)
class EngineOptions:
    endpoint: EndpointOptions = EndpointOptions()
    vad: VadOptions = VadOptions()
    guard: GuardOptions = GuardOptions()
    max_batch: int = 8  # windows per encoder/decoder batch of finals
    max_partial_batch: int = 4  # partials per batch: small, so a final never waits long behind them
    partial_budget: float = 0.35  # most of the scheduler's time partials may take, over the last 2 s
    fallback_temperatures: Tuple[float, ...] = (0.2, 0.5)  # tried for unreliable finals
    min_partial_audio_s: float = 0.6
    # LocalAgreement-2 commits: once an utterance is this long, words that two consecutive partials
    # agree on, ending at least commit_margin_s before the audio so far, become a final.
    commit_after_s: float = 5.0
    commit_margin_s: float = 1.0
    commit_min_words: int = 3
    max_pending_audio_s: float = 120.0  # per stream, not yet processed; beyond it the oldest audio is dropped
    behind_after_s: float = 2.0  # a final waiting longer than this means the engine is behind
    tick_s: float = 0.02


@dataclass(frozen=True)
class EngineStats:
    active_streams: int
    queued_audio_s: float
    lag_s: float
    behind: bool
    partials_skipped: int
    finals_emitted: int
    partials_emitted: int
    audio_dropped_s: float


@dataclass
class _Job:
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
        self.finals: Deque[_Job] = collections.deque()
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
        self.finals.append(_Job(self, "final", self.segment_index, audio, start_s, self._partial_sent, frames,
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

    def speculative_job(self, after_frames: int) -> Optional[_Job]:
        """The open utterance as it will end if the caller stays silent: decoding it during the
        trailing silence means its final goes out the moment the endpointer closes it."""
        expected = self._endpointer.expected_end()
        if expected is None or self.flushed or self._endpointer.frame - self._endpointer.last_speech_frame < after_frames:
            return None
        if expected in self.speculated or self._endpointer.frame < expected[1]:
            return None
        start, end = expected
        return _Job(self, "final", self.segment_index, self._slice(start, end), start * FRAME_SAMPLES / SAMPLE_RATE_HZ,
                    frames=expected, speculative=True)  # fmt: skip

    def partial_job(self, now_frame_interval: int, min_frames: int) -> Optional[_Job]:
        """The open utterance's audio, if it is due a partial."""
        start = self._endpointer.start_frame
        if start is None or not self.options.partials or self.flushed:
            return None
        end = self._endpointer.frame
        if end - start < min_frames or end - self._last_partial_frame < now_frame_interval:
            return None
        if self.final_imminent:
            return None  # the caller paused: its final is probably next, so leave it the compute
        return _Job(self, "partial", self.segment_index, self._slice(start, end), start * FRAME_SAMPLES / SAMPLE_RATE_HZ)

    @property
    def final_imminent(self) -> bool:
        """In an utterance whose caller has paused: the endpointer may close it any moment."""
        endpointer = self._endpointer
        return endpointer.in_utterance and endpointer.frame - endpointer.last_speech_frame > _PAUSE_FRAMES

    def mark_partial(self, job: _Job) -> None:
        self._last_partial_frame = self._endpointer.frame

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

    def commit(self, job: _Job, end_s: float) -> Optional[_Job]:
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


class StreamingEngine:
    """Owns the model on one scheduler thread and serves every open stream from it."""

    def __init__(self, model, options: EngineOptions = EngineOptions()):
        self.model, self.options = model, options
        self._streams: Dict[str, Stream] = {}
        self._lock = threading.Lock()
        self._wakeup = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._stopping = False
        self._counters = collections.Counter()
        self._lag_s = 0.0
        self._behind = False
        self._partial_runs: Deque[Tuple[float, float]] = collections.deque()  # (ended at, seconds taken)

    # -- public API -------------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="whisper-scheduler", daemon=True)
            self._thread.start()

    def open_stream(self, stream_id: str, options: StreamOptions = StreamOptions(),
                    on_event: Optional[EventCallback] = None) -> Stream:  # fmt: skip
        if options.language is not None and not self.model.is_multilingual and options.language != "en":
            raise ValueError(f"this model is English-only; it can't transcribe language {options.language!r}")
        stream = Stream(self, stream_id, options, on_event or (lambda event: None))
        with self._lock:
            if stream_id in self._streams:
                raise ValueError(f"stream {stream_id!r} is already open")
            self._streams[stream_id] = stream
        return stream

    def is_alive(self) -> bool:
        """The scheduler thread runs (health checks)."""
        return self._thread is not None and self._thread.is_alive()

    def stats(self) -> EngineStats:
        with self._lock:
            streams = list(self._streams.values())
        now = time.monotonic()
        oldest = min((s.finals[0].ready_at for s in streams if s.finals), default=now)
        lag_s = max(self._lag_s, now - oldest)
        return EngineStats(
            active_streams=len(streams), queued_audio_s=sum(s.queued_audio_s for s in streams), lag_s=lag_s,
            behind=lag_s > self.options.behind_after_s, partials_skipped=self._counters["partials_skipped"],
            finals_emitted=self._counters["finals"], partials_emitted=self._counters["partials"],
            audio_dropped_s=self._counters["dropped_ms"] / 1000,
        )  # fmt: skip

    def stop(self, timeout_s: float = 10.0) -> None:
        """Flush every open stream (their finals are delivered), then stop the scheduler."""
        with self._lock:
            streams = list(self._streams.values())
        futures = [stream.close() for stream in streams]
        deadline = time.monotonic() + timeout_s
        for future in futures:
            try:
                future.result(timeout=max(0.0, deadline - time.monotonic()))
            except Exception:  # noqa: BLE001 - a stream that fails to flush must not block shutdown
                log.warning("a stream did not flush before the deadline")
        self._stopping = True
        self._wake()
        if self._thread is not None:
            self._thread.join(timeout=max(0.1, deadline - time.monotonic()))
            self._thread = None

    def step(self) -> None:
        """One scheduler tick on the caller's thread: for deterministic simulations (engine not started)."""
        if self._thread is not None:
            raise RuntimeError("step() is for an engine whose scheduler thread is not running")
        self._tick()

    # -- scheduler --------------------------------------------------------------------------
    def _wake(self) -> None:
        self._wakeup.set()

    def _run(self) -> None:
        torch.set_grad_enabled(False)
        while not self._stopping:
            self._wakeup.wait(timeout=self.options.tick_s * 5)
            self._wakeup.clear()
            try:
                self._tick()
            except Exception:  # noqa: BLE001 - the scheduler must survive one bad batch
                log.exception("streaming scheduler tick failed")
            time.sleep(self.options.tick_s)

    def _tick(self) -> None:
        with self._lock:
            streams = list(self._streams.values())
        for stream in streams:
            _, dropped_s = stream.drain()
            self._counters["dropped_ms"] += int(dropped_s * 1000)
        finals = sorted((job for stream in streams for job in stream.finals), key=lambda job: job.ready_at)
        speculative = [job for s in streams if (job := s.speculative_job(_SPECULATE_FRAMES)) is not None]
        if finals or speculative:
            batch = finals[: self.options.max_batch]
            self._run_finals(batch, speculative[: max(0, self.options.max_batch - len(batch))])
        else:
            self._run_partials(streams)
        for stream in streams:
            if stream.done:
                self._retire(stream)
        self._report_backlog()

    def _report_backlog(self) -> None:
        """Log once when the engine falls behind and once when it catches up."""
        stats = self.stats()
        if stats.behind != self._behind:
            self._behind = stats.behind
            if stats.behind:
                log.warning("transcription is behind: finals wait %.1f s, %d partials skipped so far (%d streams)",
                            stats.lag_s, stats.partials_skipped, stats.active_streams)
            else:
                log.info("transcription caught up (%d streams)", stats.active_streams)

    def _retire(self, stream: Stream) -> None:
        with self._lock:
            self._streams.pop(stream.id, None)
        if not stream.close_future.done():
            stream.close_future.set_result(None)

    def _partial_time_s(self, window_s: float = _BUDGET_WINDOW_S) -> float:
        now = time.monotonic()
        while self._partial_runs and self._partial_runs[0][0] < now - window_s:
            self._partial_runs.popleft()
        return sum(duration for _, duration in self._partial_runs)

    def _run_partials(self, streams: List[Stream]) -> None:
        interval = {s.id: max(1, round(s.options.partial_interval_s * 50)) for s in streams}
        min_frames = round(self.options.min_partial_audio_s * 50)
        due = [job for s in streams if (job := s.partial_job(interval[s.id], min_frames)) is not None]
        if not due:
            return
        # In real time, leave finals most of the scheduler's time: over budget, partials stay due and
        # go out later. (Simulations step on audio time, where wall time means nothing.)
        if self.is_alive() and self._partial_time_s() > self.options.partial_budget * _BUDGET_WINDOW_S:
            return
        started = time.monotonic()
        try:
            self._decode_partials(streams, due)
        finally:
            self._partial_runs.append((time.monotonic(), time.monotonic() - started))

    def _decode_partials(self, streams: List[Stream], due: List[_Job]) -> None:
        due.sort(key=lambda job: job.stream._last_partial_frame)
        # Thin partials, stalest streams first; to one when another stream's final is about to be due.
        limit = 1 if any(s.final_imminent for s in streams) else self.options.max_partial_batch
        if len(due) > limit:
            self._counters["partials_skipped"] += len(due) - limit
            due = due[:limit]
        for job in due:
            job.stream.mark_partial(job)
        for job, result in zip(due, self._decode(due)):
            if rejection_reason(result, len(job.audio) / SAMPLE_RATE_HZ, self.options.guard) is None:
                self._emit(job, result)
                self._maybe_commit(job, result)

    def _maybe_commit(self, job: _Job, result: DecodingResult) -> None:
        """Finals before the speaker stops: commit the words two partials agree on (LocalAgreement-2)."""
        options, stream = self.options, job.stream
        duration_s = len(job.audio) / SAMPLE_RATE_HZ
        agreed = stream.agreed_words(result.text.split())
        if duration_s < options.commit_after_s or agreed < options.commit_min_words:
            return
        timings = self._word_timings(job, result)
        spoken = [t for t in timings if t.word.strip()]
        committed = [t for t in spoken[:agreed] if t.end <= duration_s - options.commit_margin_s]
        if len(committed) < options.commit_min_words:
            return
        final_job = stream.commit(job, job.start_s + committed[-1].end)
        if final_job is None:
            return
        text = "".join(t.word for t in committed).strip()
        tokens = [token for t in committed for token in t.tokens]
        self._emit(final_job, replace(result, text=text, tokens=tokens), timings=committed)

    def _run_finals(self, jobs: List[_Job], speculative: List[_Job]) -> None:
        started = time.monotonic()
        to_decode = [job for job in jobs if job.result is None] + speculative
        for job, result in zip(to_decode, self._decode(to_decode) if to_decode else []):
            if job.speculative:
                job.stream.speculated[job.frames] = result
            else:
                job.result = result
        for job in jobs:
            result = job.result
            duration_s = len(job.audio) / SAMPLE_RATE_HZ
            result = self._with_fallback(job, result)
            reason = rejection_reason(result, duration_s, self.options.guard)
            if reason is not None:
                log.debug("stream %s segment %d: dropped (%s): %r", job.stream.id, job.segment_index, reason, result.text)
                result = replace(result, text="", tokens=[])
            job.stream.finals.popleft()
            if result.text or job.had_partial:
                self._emit(job, result)
        self._lag_s = time.monotonic() - started

    def _with_fallback(self, job: _Job, result: DecodingResult) -> DecodingResult:
        for temperature in self.options.fallback_temperatures:
            if not needs_fallback(result, self.options.guard):
                break
            result = self._decode([job], temperature=temperature)[0]
        return result

    def _emit(self, job: _Job, result: DecodingResult, timings: Optional[list] = None) -> None:
        stream = job.stream
        duration_s = len(job.audio) / SAMPLE_RATE_HZ
        words: Tuple[Word, ...] = ()
        if job.kind == "final" and result.text and stream.options.word_timestamps:
            timings = timings if timings is not None else self._word_timings(job, result)
            words = tuple(
                Word(t.word, round(job.start_s + t.start, 3), round(job.start_s + t.end, 3), float(t.probability))
                for t in timings if t.word.strip()
            )  # fmt: skip
        event = TranscriptEvent(
            stream_id=stream.id, kind=job.kind, segment_index=job.segment_index, text=result.text,
            start_s=round(job.start_s, 3), end_s=round(job.start_s + duration_s, 3), language=result.language,
            avg_logprob=float(result.avg_logprob), no_speech_prob=float(result.no_speech_prob), words=words,
        )  # fmt: skip
        if job.kind == "partial":
            stream._partial_sent = True
            self._counters["partials"] += 1
        else:
            self._counters["finals"] += 1
        try:
            stream.on_event(event)
        except Exception:  # noqa: BLE001 - a faulty listener must not stop other streams
            log.exception("event callback of stream %s failed", stream.id)

    def _word_timings(self, job: _Job, result: DecodingResult) -> list:
        """Word times from the cross-attention the decode recorded (or, after a fallback, a new pass)."""
        tokenizer = DecodingTask(self.model, self._decoding_options(job.stream, 0.0, 10)).tokenizer
        num_frames = len(job.audio) // HOP_LENGTH
        if result.cross_attention is not None:
            first_row = len(result.cross_attention[0][0, 0]) - len(result.tokens) - 1
            timings = align_words(self.model, tokenizer, result.tokens, result.cross_attention, num_frames,
                                  np.asarray(result.token_probs), first_row)  # fmt: skip
        else:
            timings = find_alignment(self.model, tokenizer, result.tokens, None, num_frames,
                                     audio_features=result.audio_features)  # fmt: skip
        return merge_punctuations(timings, PREPEND_PUNCTUATIONS, APPEND_PUNCTUATIONS)

    @staticmethod
    def _mel(audio: np.ndarray) -> torch.Tensor:
        return log_mel_spectrogram(pad_or_trim(audio, N_SAMPLES))

    def _decoding_options(self, stream: Stream, temperature: float, sample_len: int) -> DecodingOptions:
        prompt = " ".join(p for p in (stream.options.hotwords, stream.options.initial_prompt) if p) or None
        return DecodingOptions(
            task=stream.options.task, language=stream.options.language, temperature=temperature,
            sample_len=sample_len, prompt=prompt, without_timestamps=True,
        )  # fmt: skip

    def _decode(self, jobs: List[_Job], temperature: float = 0.0) -> List[DecodingResult]:
        """Encode all windows in one batch; decode them in groups that share decoding options."""
        mel = torch.stack([self._mel(job.audio[-N_SAMPLES:]) for job in jobs])
        features = self.model.embed_audio(mel.to(self.model.device))
        groups: Dict[DecodingOptions, List[int]] = collections.defaultdict(list)
        for i, job in enumerate(jobs):
            groups[self._decoding_options(job.stream, temperature, 0)].append(i)
        results: List[Optional[DecodingResult]] = [None] * len(jobs)
        for options, rows in groups.items():
            longest_s = max(len(jobs[i].audio) for i in rows) / SAMPLE_RATE_HZ
            options = replace(options, sample_len=min(224, int(12 + 8 * longest_s)))
            task = DecodingTask(self.model, options, collect_alignment=True)
            for i, result in zip(rows, task.run(features[rows])):
                results[i] = result
        return results  # type: ignore[return-value]
