"""Streaming transcription: many live streams served by one model on one scheduler thread.

Each stream's audio goes through resampling, voice activity detection and endpointing on the
scheduler thread (``push`` only queues bytes; see stream_state.py). Every tick the scheduler
batches the pending work of all streams through the encoder and decoder: finished utterances
("finals") first, with utterances whose caller has just paused decoded speculatively alongside,
then the open utterances that are due a "partial". A running batch polls the streams between
encoder chunks and decoding steps, so endpoints are found and speculated finals sent while it
runs, and a final that falls due abandons a batch of partials. When the model can't keep up,
partials are thinned (never finals) and ``stats().behind`` says so.
"""
from __future__ import annotations

import collections
import logging
import threading
import time
from dataclasses import dataclass, replace
from typing import Deque, Dict, List, Optional, Tuple

import numpy as np
import torch

from .audio import HOP_LENGTH, N_SAMPLES, SAMPLE_RATE_HZ, log_mel_spectrogram, pad_or_trim
from .decoding import DecodingOptions, DecodingResult, DecodingTask
from .endpointing import EndpointOptions
from .stream_guards import GuardOptions, needs_fallback, rejection_reason
from .stream_state import Job, Stream
from .stream_types import EventCallback, StreamOptions, TranscriptEvent, Word
from .tokenizer import get_tokenizer
from .timing import APPEND_PUNCTUATIONS, PREPEND_PUNCTUATIONS, align_words, find_alignment, merge_punctuations
from .vad import VadOptions

log = logging.getLogger(__name__)

_BUDGET_WINDOW_S = 2.0
_POLL_INTERVAL_S = 0.1
_ENCODE_WINDOWS = 2  # windows per encoder call: as fast per window as larger calls, with polls between
_SPECULATE_FRAMES = 11  # once the post-roll is in (220 ms of silence), decode the utterance as it will end


class _Preempted(Exception):
    """Raised from a poll to abandon a batch of partials."""


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
        self._last_poll = 0.0
        self._preemptible = False  # a batch of partials is running: a final due now preempts it

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
        busy = False
        while not self._stopping:
            if not busy:  # idle: wait for audio, then let a tick's worth of frames gather
                self._wakeup.wait(timeout=self.options.tick_s * 5)
                time.sleep(self.options.tick_s)
            self._wakeup.clear()
            try:
                busy = self._tick()
            except Exception:  # noqa: BLE001 - the scheduler must survive one bad batch
                log.exception("streaming scheduler tick failed")
                busy = False

    def _tick(self) -> bool:
        """Drain every stream and run one batch; returns whether the model ran."""
        with self._lock:
            streams = list(self._streams.values())
        self._drain(streams)
        self._deliver_ready(streams, fallback=True)
        finals = sorted((job for s in streams for job in s.finals if job.result is None), key=lambda job: job.ready_at)
        finals = finals[: self.options.max_batch]
        # Speculative windows ride along with finals: a row more in a batch costs far less than a
        # batch of its own (a decoding step's cost hardly depends on the batch size).
        speculative = [job for s in streams if (job := s.speculative_job(_SPECULATE_FRAMES)) is not None]
        speculative = speculative[: self.options.max_batch - len(finals)]
        ran = bool(finals or speculative)
        if ran:
            self._run_finals(finals, speculative)
            self._deliver_ready(streams, fallback=True)
        else:
            ran = self._run_partials(streams)
        for stream in streams:
            if stream.done:
                self._retire(stream)
        self._report_backlog()
        return ran

    def _drain(self, streams: List[Stream]) -> None:
        for stream in streams:
            _, dropped_s = stream.drain()
            self._counters["dropped_ms"] += int(dropped_s * 1000)
        self._last_poll = time.monotonic()

    def _poll(self) -> None:
        """Called between encoder chunks and decoding steps: take in new audio and send the finals
        that are ready, so that a running batch doesn't hold back endpoints or speculated finals."""
        if time.monotonic() - self._last_poll < _POLL_INTERVAL_S:
            return
        with self._lock:
            streams = list(self._streams.values())
        self._drain(streams)
        self._deliver_ready(streams, fallback=False)
        if self._preemptible and any(s.finals or s.speculative_job(_SPECULATE_FRAMES) for s in streams):
            raise _Preempted  # a final (or its speculative decode) goes first; these partials are dropped

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

    def _run_partials(self, streams: List[Stream]) -> bool:
        interval = {s.id: max(1, round(s.options.partial_interval_s * 50)) for s in streams}
        min_frames = round(self.options.min_partial_audio_s * 50)
        due = [job for s in streams if (job := s.partial_job(interval[s.id], min_frames)) is not None]
        if not due:
            return False
        # In real time, leave finals most of the scheduler's time: over budget, partials stay due and
        # go out later. (Simulations step on audio time, where wall time means nothing.)
        if self.is_alive() and self._partial_time_s() > self.options.partial_budget * _BUDGET_WINDOW_S:
            return False
        started = time.monotonic()
        try:
            self._decode_partials(streams, due)
        finally:
            self._partial_runs.append((time.monotonic(), time.monotonic() - started))
        return True

    def _decode_partials(self, streams: List[Stream], due: List[Job]) -> None:
        due.sort(key=lambda job: job.stream._last_partial_frame)
        # Thin partials, stalest streams first; to one when another stream's final is about to be due.
        limit = 1 if any(s.final_imminent for s in streams) else self.options.max_partial_batch
        if len(due) > limit:
            self._counters["partials_skipped"] += len(due) - limit
            due = due[:limit]
        self._preemptible = True
        try:
            results = self._decode(due)
        except _Preempted:  # these streams stay due, for the next tick with time for partials
            self._counters["partials_skipped"] += len(due)
            return
        finally:
            self._preemptible = False
        for job, result in zip(due, results):
            if job.segment_index != job.stream.segment_index:
                continue  # its utterance ended while the batch ran: the final supersedes it
            job.stream.mark_partial(job)
            if rejection_reason(result, len(job.audio) / SAMPLE_RATE_HZ, self.options.guard) is None:
                self._emit(job, result)
                self._maybe_commit(job, result)

    def _maybe_commit(self, job: Job, result: DecodingResult) -> None:
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

    def _run_finals(self, jobs: List[Job], speculative: List[Job]) -> None:
        started = time.monotonic()
        to_decode = jobs + speculative
        for job, result in zip(to_decode, self._decode(to_decode)):
            if job.speculative:
                job.stream.accept_speculation(job, result)
            else:
                job.result = result
        self._lag_s = time.monotonic() - started

    def _deliver_ready(self, streams: List[Stream], fallback: bool) -> None:
        """Emit each stream's finals that have a result, in order. Without ``fallback`` (in the middle
        of a batch, where the model is busy) a final that needs one waits for the next tick."""
        for stream in streams:
            while stream.finals and stream.finals[0].result is not None:
                job = stream.finals[0]
                if not fallback and needs_fallback(job.result, self.options.guard):
                    break
                result = self._with_fallback(job, job.result)
                reason = rejection_reason(result, len(job.audio) / SAMPLE_RATE_HZ, self.options.guard)
                if reason is not None:
                    log.debug("stream %s segment %d: dropped (%s): %r", stream.id, job.segment_index, reason, result.text)
                    result = replace(result, text="", tokens=[])
                stream.finals.popleft()
                if result.text or job.had_partial:
                    self._emit(job, result)

    def _with_fallback(self, job: Job, result: DecodingResult) -> DecodingResult:
        for temperature in self.options.fallback_temperatures:
            if not needs_fallback(result, self.options.guard):
                break
            result = self._decode([job], temperature=temperature)[0]
        return result

    def _emit(self, job: Job, result: DecodingResult, timings: Optional[list] = None) -> None:
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

    def _word_timings(self, job: Job, result: DecodingResult) -> list:
        """Word times from the cross-attention the decode recorded (or, after a fallback, a new pass)."""
        tokenizer = get_tokenizer(self.model.is_multilingual, num_languages=self.model.num_languages,
                                  language=result.language, task=job.stream.options.task)  # fmt: skip
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

    def _decode(self, jobs: List[Job], temperature: float = 0.0) -> List[DecodingResult]:
        """Encode all windows in one batch; decode them in groups that share decoding options."""
        features = []
        for first in range(0, len(jobs), _ENCODE_WINDOWS):
            mel = torch.stack([self._mel(job.audio[-N_SAMPLES:]) for job in jobs[first : first + _ENCODE_WINDOWS]])
            features.append(self.model.embed_audio(mel.to(self.model.device)))
            self._poll()
        features = torch.cat(features)
        groups: Dict[DecodingOptions, List[int]] = collections.defaultdict(list)
        for i, job in enumerate(jobs):
            groups[self._decoding_options(job.stream, temperature, 0)].append(i)
        results: List[Optional[DecodingResult]] = [None] * len(jobs)
        for options, rows in groups.items():
            longest_s = max(len(jobs[i].audio) for i in rows) / SAMPLE_RATE_HZ
            options = replace(options, sample_len=min(224, int(12 + 8 * longest_s)))
            task = DecodingTask(self.model, options, collect_alignment=True, on_step=self._poll)
            for i, result in zip(rows, task.run(features[rows])):
                results[i] = result
        return results  # type: ignore[return-value]
