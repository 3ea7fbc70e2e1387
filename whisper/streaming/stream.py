"""One live stream on the scheduler thread: its utterances, and the decode jobs they make.

Its audio comes in through an ``Ingest`` (ingest.py: inbox, resampling, VAD, endpointer), which
hands it the utterances the endpointer cuts. It says what it wants decoded (finals, speculative
finals, partials) as ``Job`` values; the scheduler decides when and batches them, and gives the
results back. A stream knows its engine only as its options and a ``wake`` callable (audio or a
close has arrived).
"""
from __future__ import annotations

import collections
import logging
from concurrent.futures import Future
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Callable, Deque, Dict, Iterator, Optional, Tuple

from ..language import LanguageEvidence
from ..numbers import is_digit_string
from .endpointing import Boundary, EndpointOptions
from .ingest import Ingest
from .job import Job
from .options import EngineOptions
from .pcm import FRAMES_PER_S
from ..policy import releases_hold, wants_more_audio
from .types import EventCallback, StreamOptions, TranscriptEvent
from .vad import FRAME_SAMPLES, SAMPLE_RATE_HZ

if TYPE_CHECKING:
    from ..decoding import DecodingResult

log = logging.getLogger(__name__)

PAUSE_FRAMES = 10  # 200 ms without speech: the caller paused, a final may be next


def _endpointing(engine_default: EndpointOptions, options: StreamOptions) -> EndpointOptions:
    """The stream's own trailing silence, else its grammar's (digit strings), else the engine's."""
    trailing_s = options.trailing_silence_s
    if trailing_s is None and options.grammar is not None:
        from ..grammar import parse_grammar

        trailing_s = parse_grammar(options.grammar).trailing_silence_s
    return engine_default if trailing_s is None else replace(engine_default, trailing_silence_s=trailing_s)


@dataclass
class _Final:
    """A finished utterance waiting to go out, and its result once decoded."""

    job: Job  # as cut: its language is resolved again when it is handed out
    result: Optional["DecodingResult"] = None


class Stream:
    """One live audio stream. ``push`` and ``close`` are safe from any thread and never block.

    Its audio in is an ``Ingest`` (ingest.py); this class is its utterances: the finals the
    endpointer cut, what to decode (finals, speculative finals, partials) as ``Job`` values, their
    results back, the language its finals speak, and the context of an utterance that was cut.
    """

    def __init__(self, stream_id: str, stream_options: StreamOptions, engine_options: EngineOptions,
                 on_event: EventCallback, wake: Callable[[], None]):  # fmt: skip
        self.id, self.stream_options, self.engine_options = stream_id, stream_options, engine_options
        self.on_event, self._wake = on_event, wake
        self.close_future: Future = Future()
        # Everything below belongs to the scheduler thread.
        self._ingest = Ingest(stream_id, engine_options, _endpointing(engine_options.endpoint, stream_options),
                              self._finish)  # fmt: skip
        self._endpointer = self._ingest.endpointer
        self.language = LanguageEvidence(stream_options.language_candidates)  # fed by its finals
        self._drained_at_s = 0.0
        self._finals: Deque[_Final] = collections.deque()
        self._speculated: Dict[Tuple[int, int], "DecodingResult"] = {}  # frames -> result, for the open utterance
        self.segment_index = 0
        self._partial_sent = False  # a partial went out for the current segment
        self._last_partial_frame = 0  # the end of the audio the last partial (or final) covered
        self._partial_decoded = False  # the open utterance has had a partial decoded
        # The last segment ended by a cut, and its final text once it is out: windows of
        # the segment that continues it are decoded with that text as context (Job.context); those
        # made before it is out (a speculative decode in the same tick), without.
        self._cut_segment = -1
        self._continued_text = ""

    # -- called from any thread -------------------------------------------------------------
    def push(self, pcm: bytes, sample_rate_hz: int = 8000) -> None:
        """Queue signed 16-bit little-endian mono PCM (or a float32 numpy array) at ``sample_rate_hz``."""
        if self._ingest.put(pcm, sample_rate_hz):
            self._wake()

    def close(self) -> Future:
        """Flush: the open utterance becomes final. The future resolves after the last final event."""
        self._ingest.close()
        self._wake()
        return self.close_future

    @property
    def queued_audio_s(self) -> float:
        return self._ingest.queued_s

    # -- scheduler thread: audio in ---------------------------------------------------------
    def drain(self, now_s: float) -> float:
        """Process queued audio (finals it cuts are ready at ``now_s``); returns seconds of audio dropped."""
        self._drained_at_s = now_s
        return self._ingest.drain()

    @property
    def flushed(self) -> bool:
        """Closed, and all its audio processed."""
        return self._ingest.flushed

    def _job(self, kind: str, frames: Tuple[int, int], **fields) -> Job:
        start, end = frames
        context = self._continued_text if self._cut_segment == self.segment_index - 1 else ""
        job = Job(self.id, kind, self.segment_index, self._ingest.slice(start, end),
                  start * FRAME_SAMPLES / SAMPLE_RATE_HZ, self.stream_options, context=context, frames=frames,
                  **fields)  # fmt: skip
        return self._resolved(job)

    def _resolved(self, job: Job) -> Job:
        """``job`` with the stream's language as it stands now (its finals may have decided it)."""
        language = self.stream_options.language or self.language.decided()
        prior = {} if language else self.language.prior(job.duration_s)
        return replace(job, language=language, language_prior=prior)

    def _finish(self, boundary: Boundary) -> None:
        frames = (boundary.start_frame, boundary.end_frame)
        job = self._job("final", frames, had_partial=self._partial_sent, ready_at_s=self._drained_at_s)
        self._finals.append(_Final(job, self._speculated.get(frames)))
        if boundary.cut:
            self._cut_segment, self._continued_text = self.segment_index, ""
        self.segment_index += 1
        self._partial_sent = False
        self._partial_decoded = False
        self._speculated = {}
        self._last_partial_frame = boundary.end_frame

    # -- scheduler thread: finals -----------------------------------------------------------
    def undecoded_finals(self) -> Iterator[Job]:
        return (self._resolved(final.job) for final in self._finals if final.result is None)

    def accept_final(self, job: Job, result: "DecodingResult") -> None:
        """A final's decode is back."""
        for final in self._finals:
            if final.job.segment_index == job.segment_index and final.result is None:
                final.result = result

    def ready_final(self) -> Optional[Tuple[Job, "DecodingResult"]]:
        """The oldest final and its result, if it is decoded: finals go out in order."""
        if not self._finals or self._finals[0].result is None:
            return None
        return self._resolved(self._finals[0].job), self._finals[0].result

    def pop_final(self) -> None:
        self._finals.popleft()

    @property
    def has_finals(self) -> bool:
        return bool(self._finals)

    @property
    def oldest_final_at_s(self) -> Optional[float]:
        return self._finals[0].job.ready_at_s if self._finals else None

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
            if final.job.frames == job.frames and final.result is None:
                final.result = result
                return
        if job.segment_index == self.segment_index:
            self._speculated[job.frames] = result
            if self.engine_options.hold_unsure and wants_more_audio(result, self.engine_options.guard):
                self._endpointer.hold_open(number=is_digit_string(result.text, result.language))
            elif self._endpointer.held and releases_hold(result, self.engine_options.guard):
                self._endpointer.release()

    # -- scheduler thread: partials ---------------------------------------------------------
    @property
    def talking(self) -> bool:
        """In an utterance that wants partials."""
        return self._endpointer.start_frame is not None and self.stream_options.partials and not self.flushed

    def partial_job(self, min_interval_s: float = 0.0) -> Optional[Job]:
        """The open utterance's audio, if it is due a partial. Its first partial is due as soon as
        it has ``min_partial_audio_s`` of audio (what shows a caller they are heard); later ones
        ``partial_interval_s`` (or `min_interval_s`, what the scheduler can afford, if longer) after
        the last one."""
        start = self._endpointer.start_frame
        if not self.talking:
            return None
        end = self._endpointer.frame
        interval_s = self.stream_options.partial_interval_s
        if self._partial_decoded:
            interval_s = max(interval_s, min_interval_s)
        interval_frames = max(1, round(interval_s * FRAMES_PER_S))
        if end - start < round(self.engine_options.min_partial_audio_s * FRAMES_PER_S):
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
