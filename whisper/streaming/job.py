"""A window for the decoder, as a value: a finished utterance, or the open one's audio so far, with
everything its decode reads (the stream's options, the language, the prompt's context) resolved
when the stream made it. Results go back to the stream as values (``Stream.accept_final``,
``accept_speculation``, ``mark_partial``); nothing reads or changes a stream through a job.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Mapping, Optional, Sequence, Tuple

import numpy as np

from .types import EventKind, StreamOptions, TranscriptEvent, Word
from .vad import SAMPLE_RATE_HZ

if TYPE_CHECKING:
    from ..decoding import DecodingResult


@dataclass(frozen=True, eq=False)  # eq=False: jobs are compared by identity, not by their audio
class Job:
    stream_id: str
    kind: EventKind
    segment_index: int
    audio: np.ndarray  # 16 kHz float32, not written to after the job is made
    start_s: float
    stream_options: StreamOptions = StreamOptions()  # task, prompt, grammar, vocabulary, ...
    # The stream's language: its own, or the one its finals have agreed on; None: detect, weighted
    # by ``language_prior`` (LanguageEvidence.prior for this window's duration)
    language: Optional[str] = None
    language_prior: Mapping[str, float] = field(default_factory=dict)
    context: str = ""  # the text of the final this window's utterance continues (after a cut)
    frames: Tuple[int, int] = (0, 0)  # [start, end) in stream frames: the same audio gives the same result
    had_partial: bool = False  # a partial of this segment went out, so its final must too
    speculative: bool = False  # decoded during the trailing silence, before the utterance is over
    ready_at_s: float = 0.0  # a final's: the scheduler clock's time when it was cut

    @property
    def duration_s(self) -> float:
        return len(self.audio) / SAMPLE_RATE_HZ

    @property
    def prompt(self) -> Optional[str]:
        """The stream's initial prompt and, where the utterance continues one that was cut, that
        one's text (as transcribe() conditions a window on the one before)."""
        return " ".join(text for text in (self.stream_options.initial_prompt, self.context) if text) or None

    def event(self, result: "DecodingResult", words: Sequence[Word] = ()) -> TranscriptEvent:
        """``result`` as this window's event, times in the stream's clock."""
        return TranscriptEvent(
            stream_id=self.stream_id, kind=self.kind, segment_index=self.segment_index, text=result.text,
            start_s=round(self.start_s, 3), end_s=round(self.start_s + self.duration_s, 3), language=result.language,
            avg_logprob=float(result.avg_logprob), no_speech_prob=float(result.no_speech_prob), words=tuple(words),
        )  # fmt: skip
