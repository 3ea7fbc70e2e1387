"""One live stream's state on the scheduler thread: audio in, utterances and decode jobs out.

A stream resamples what it is pushed to 16 kHz, classifies 20 ms frames with the VAD, lets the
endpointer cut utterances, and keeps just the audio its open utterance (or the next one's pre-roll)
can still need. It says what it wants decoded (finals, speculative finals, partials) as ``Job``s;
the scheduler decides when and batches them. A stream knows its engine only as its options and a
``wake`` callable (audio or a close has arrived).
"""
from __future__ import annotations

import collections
import logging
from concurrent.futures import Future
from dataclasses import replace
from typing import TYPE_CHECKING, Callable, Deque, Dict, Iterator, Optional, Tuple

import numpy as np

from ..audio import StreamingResampler, int16_to_float
from ..language import LanguageEvidence
from ..numbers import is_digit_string
from .agreement import LocalAgreement
from .endpointing import Boundary, EndpointOptions, Endpointer
from .inbox import Inbox
from .job import Job
from .options import EngineOptions
from .policy import releases_hold, wants_more_audio
from .types import EventCallback, StreamOptions, TranscriptEvent
from .vad import FRAME_MS, FRAME_SAMPLES, SAMPLE_RATE_HZ, VoiceActivityDetector

if TYPE_CHECKING:
    from ..decoding import DecodingResult

log = logging.getLogger(__name__)

PAUSE_FRAMES = 10  # 200 ms without speech: the caller paused, a final may be next
FRAMES_PER_S = 1000 // FRAME_MS


def _endpointing(engine_default: EndpointOptions, options: StreamOptions) -> EndpointOptions:
    """The stream's own trailing silence, else its grammar's (digit strings), else the engine's."""
    trailing_s = options.trailing_silence_s
    if trailing_s is None and options.grammar is not None:
        from ..grammar import parse_grammar

        trailing_s = parse_grammar(options.grammar).trailing_silence_s
    return engine_default if trailing_s is None else replace(engine_default, trailing_silence_s=trailing_s)


class Stream:
    """One live audio stream. ``push`` and ``close`` are safe from any thread and never block."""

    def __init__(self, stream_id: str, options: StreamOptions, config: EngineOptions, on_event: EventCallback,
                 wake: Callable[[], None]):  # fmt: skip
        self.id, self.options, self.config, self.on_event = stream_id, options, config, on_event
        self._wake = wake
        self._inbox = Inbox(stream_id)
        self.close_future: Future = Future()
        # Everything below belongs to the scheduler thread.
        self._resampler: Optional[StreamingResampler] = None
        self._vad = VoiceActivityDetector(config.vad)
        self._endpointer = Endpointer(_endpointing(config.endpoint, options))
        self.agreement = LocalAgreement(config.agreement)
        self.language = LanguageEvidence(options.language_candidates)  # fed by its finals
        self._audio = np.zeros(0, dtype=np.float32)  # 16 kHz samples from _audio_start_frame on
        self._audio_start_frame = 0
        self._pending_frame_samples = np.zeros(0, dtype=np.float32)
        self._drained_at_s = 0.0
        self._finals: Deque[Job] = collections.deque()
        self._speculated: Dict[Tuple[int, int], "DecodingResult"] = {}  # frames -> result, for the open utterance
        self.segment_index = 0
        self._partial_sent = False  # a partial went out for the current segment
        self._last_partial_frame = 0  # the end of the audio the last partial (or final) covered
        self._partial_decoded = False  # the open utterance has had a partial decoded
        # The last segment ended by a cut or commit, and its final text once it is out: windows of
        # the segment that continues it are decoded with that text as context (Job.context); those
        # made before it is out (a speculative decode in the same tick), without.
        self._cut_segment = -1
        self._continued_text = ""
        self.flushed = False

    # -- called from any thread -------------------------------------------------------------
    def push(self, pcm: bytes, sample_rate_hz: int = 8000) -> None:
        """Queue signed 16-bit little-endian mono PCM (or a float32 numpy array) at ``sample_rate_hz``."""
        if isinstance(pcm, np.ndarray):
            pcm = (np.clip(pcm, -1.0, 1.0) * 32767).astype("<i2").tobytes()
        if not pcm:
            return
        self._inbox.put(bytes(pcm), sample_rate_hz)
        self._wake()

    def close(self) -> Future:
        """Flush: the open utterance becomes final. The future resolves after the last final event."""
        self._inbox.close()
        self._wake()
        return self.close_future

    @property
    def queued_audio_s(self) -> float:
        return self._inbox.queued_s

    # -- scheduler thread: audio in ---------------------------------------------------------
    def drain(self, now_s: float) -> float:
        """Process queued audio (finals it cuts are ready at ``now_s``); returns seconds of audio dropped."""
        runs, dropped_s, closing = self._inbox.take(self.config.max_pending_audio_s)
        self._drained_at_s = now_s
        for pcm, rate in runs:  # one resample and one VAD pass per run, not per frame
            self._ingest(self._resample(int16_to_float(pcm[: len(pcm) // 2 * 2]), rate))
        if closing and not self.flushed:
            self._flush()
        return dropped_s

    def _resample(self, samples: np.ndarray, rate_hz: int) -> np.ndarray:
        if self._resampler is None or self._resampler.from_hz != rate_hz:
            tail = self._resampler.flush() if self._resampler is not None else np.zeros(0, np.float32)
            self._resampler = StreamingResampler(rate_hz)
            return np.concatenate([tail, self._resampler.process(samples)])
        return self._resampler.process(samples)

    def _ingest(self, samples: np.ndarray) -> None:
        samples = np.concatenate([self._pending_frame_samples, samples])
        n_frames = len(samples) // FRAME_SAMPLES
        self._pending_frame_samples = samples[n_frames * FRAME_SAMPLES :]
        if n_frames == 0:
            return
        frames = samples[: n_frames * FRAME_SAMPLES]
        self._audio = np.concatenate([self._audio, frames])
        is_speech, level = self._vad.classify(frames.reshape(n_frames, FRAME_SAMPLES))
        for boundary in self._endpointer.push(is_speech, level):
            self._finish(boundary)
        self._trim_idle_audio()

    def _trim_idle_audio(self) -> None:
        """Keep only what the open utterance (or a future one's pre-roll) can still need."""
        keep_from = self._endpointer.start_frame
        if keep_from is None:
            keep_from = self._endpointer.frame - round(self.config.endpoint.pre_roll_s * FRAMES_PER_S) - 10
        drop_frames = keep_from - self._audio_start_frame
        if drop_frames > 0:
            self._audio = self._audio[drop_frames * FRAME_SAMPLES :]
            self._audio_start_frame += drop_frames

    def _slice(self, start_frame: int, end_frame: int) -> np.ndarray:
        begin = (start_frame - self._audio_start_frame) * FRAME_SAMPLES
        return self._audio[max(0, begin) : (end_frame - self._audio_start_frame) * FRAME_SAMPLES]

    def _job(self, kind: str, frames: Tuple[int, int], **fields) -> Job:
        start, end = frames
        context = self._continued_text if self._cut_segment == self.segment_index - 1 else ""
        return Job(self, kind, self.segment_index, self._slice(start, end), start * FRAME_SAMPLES / SAMPLE_RATE_HZ,
                   frames=frames, context=context, **fields)  # fmt: skip

    def _finish(self, boundary: Boundary) -> None:
        frames = (boundary.start_frame, boundary.end_frame)
        self._finals.append(self._job("final", frames, had_partial=self._partial_sent,
                                      result=self._speculated.get(frames), ready_at_s=self._drained_at_s))  # fmt: skip
        if boundary.cut:
            self._cut_segment, self._continued_text = self.segment_index, ""
        self.segment_index += 1
        self._partial_sent = False
        self._partial_decoded = False
        self.agreement.restart()
        self._speculated = {}
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

    # -- scheduler thread: finals -----------------------------------------------------------
    def undecoded_finals(self) -> Iterator[Job]:
        return (job for job in self._finals if job.result is None)

    def ready_final(self) -> Optional[Job]:
        """The oldest final, if it is decoded: finals go out in order."""
        return self._finals[0] if self._finals and self._finals[0].result is not None else None

    def pop_final(self) -> Job:
        return self._finals.popleft()

    @property
    def has_finals(self) -> bool:
        return bool(self._finals)

    @property
    def oldest_final_at_s(self) -> Optional[float]:
        return self._finals[0].ready_at_s if self._finals else None

    def speculative_job(self, after_frames: int) -> Optional[Job]:
        """The open utterance as it will end if the caller stays silent: decoding it during the
        trailing silence means its final goes out the moment the endpointer closes it."""
        endpointer = self._endpointer
        expected = endpointer.expected_end()
        if expected is None or self.flushed or endpointer.frame - endpointer.last_speech_frame < after_frames:
            return None
        if expected in self._speculated or endpointer.frame < expected[1]:
            return None
        return self._job("final", expected, speculative=True)

    def accept_speculation(self, job: Job, result: "DecodingResult") -> None:
        """A speculative decode is back: it is the result of a final that has ended as expected (or
        of one that may still), unless the caller spoke again."""
        for final in self._finals:
            if final.frames == job.frames and final.result is None:
                final.result = result
                return
        if job.segment_index == self.segment_index:
            self._speculated[job.frames] = result
            if self.config.hold_unsure and wants_more_audio(result, self.config.guard):
                self._endpointer.hold_open(number=is_digit_string(result.text, result.language))
            elif self._endpointer.held and releases_hold(result, self.config.guard):
                self._endpointer.release()

    @property
    def may_commit(self) -> bool:
        """Whether the open utterance may be committed in parts. Not while it is held open: its
        decode at a pause was digits or text the model doubted alone, so it is wanted whole (a
        number's rest, committed apart, lost its digits)."""
        return not self._endpointer.held

    def commit(self, end_s: float) -> Optional[Job]:
        """The open utterance's audio up to ``end_s`` (stream clock) as a final job; the rest stays open."""
        boundary = self._endpointer.commit_until(int(end_s * SAMPLE_RATE_HZ) // FRAME_SAMPLES)
        if boundary is None:
            return None
        self._partial_sent = True  # the committed words were shown as a partial
        self._finish(boundary)
        return self._finals.pop()

    # -- scheduler thread: partials ---------------------------------------------------------
    @property
    def talking(self) -> bool:
        """In an utterance that wants partials."""
        return self._endpointer.start_frame is not None and self.options.partials and not self.flushed

    def partial_job(self, min_interval_s: float = 0.0) -> Optional[Job]:
        """The open utterance's audio, if it is due a partial. Its first partial is due as soon as
        it has ``min_partial_audio_s`` of audio (what shows a caller they are heard); later ones
        ``partial_interval_s`` (or `min_interval_s`, what the scheduler can afford, if longer) after
        the last one."""
        start = self._endpointer.start_frame
        if not self.talking:
            return None
        end = self._endpointer.frame
        interval_s = self.options.partial_interval_s
        if self._partial_decoded:
            interval_s = max(interval_s, min_interval_s)
        interval_frames = max(1, round(interval_s * FRAMES_PER_S))
        if end - start < round(self.config.min_partial_audio_s * FRAMES_PER_S):
            return None
        if end - self._last_partial_frame < interval_frames:
            return None
        if self.final_imminent:
            return None  # the caller paused: its final is probably next, so leave it the compute
        return self._job("partial", (start, end))

    @property
    def wants_first_partial(self) -> bool:
        """Talking, and no partial decoded yet in this utterance."""
        return self.talking and not self._partial_decoded

    @property
    def final_imminent(self) -> bool:
        """In an utterance whose caller has paused: the endpointer may close it any moment."""
        endpointer = self._endpointer
        return endpointer.in_utterance and endpointer.frame - endpointer.last_speech_frame > PAUSE_FRAMES

    def mark_partial(self, job: Job) -> None:
        """A partial of the audio up to ``job``'s end was decoded: the next is due an interval later."""
        self._last_partial_frame = max(self._last_partial_frame, job.frames[1])
        self._partial_decoded = True

    def partial_priority(self, job: Job) -> Tuple[bool, int]:
        """Sorts ``job`` (this stream's partial) before others: an utterance's first partial, then the
        most audio since the stream's last partial."""
        return self._partial_decoded, self._last_partial_frame - job.frames[1]

    # -- scheduler thread: out --------------------------------------------------------------
    def emit(self, event: TranscriptEvent) -> None:
        if not event.is_final:
            self._partial_sent = True
        elif event.segment_index == self._cut_segment and not is_digit_string(event.text, event.language):
            self._continued_text = event.text  # digits carry no language, and Whisper copies them
        try:
            self.on_event(event)
        except Exception:  # noqa: BLE001 - a faulty listener must not stop other streams
            log.exception("event callback of stream %s failed", self.id)

    @property
    def done(self) -> bool:
        return self.flushed and not self._finals

    def mark_closed(self) -> None:
        if not self.close_future.done():
            self.close_future.set_result(None)
