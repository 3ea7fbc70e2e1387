"""A window for the decoder: a finished utterance, or the open one's audio so far."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional, Sequence, Tuple

import numpy as np

from .types import EventKind, TranscriptEvent, Word
from .vad import SAMPLE_RATE_HZ

if TYPE_CHECKING:
    from ..decoding import DecodingResult
    from .stream import Stream


@dataclass
class Job:
    stream: "Stream"
    kind: EventKind
    segment_index: int
    audio: np.ndarray  # 16 kHz float32
    start_s: float
    had_partial: bool = False  # a partial of this segment went out, so its final must too
    frames: Tuple[int, int] = (0, 0)  # [start, end) in stream frames: the same audio gives the same result
    speculative: bool = False  # decoded during the trailing silence, before the utterance is over
    result: Optional["DecodingResult"] = None  # already decoded (speculatively)
    ready_at_s: float = 0.0  # a final's: the scheduler clock's time when it was cut
    context: str = ""  # the text of the final this window's utterance continues (after a cut or commit)

    @property
    def duration_s(self) -> float:
        return len(self.audio) / SAMPLE_RATE_HZ

    def event(self, result: "DecodingResult", words: Sequence[Word] = ()) -> TranscriptEvent:
        """``result`` as this window's event, times in the stream's clock."""
        return TranscriptEvent(
            stream_id=self.stream.id, kind=self.kind, segment_index=self.segment_index, text=result.text,
            start_s=round(self.start_s, 3), end_s=round(self.start_s + self.duration_s, 3), language=result.language,
            avg_logprob=float(result.avg_logprob), no_speech_prob=float(result.no_speech_prob), words=tuple(words),
        )  # fmt: skip
