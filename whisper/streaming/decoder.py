"""The scheduler's seam to a model: decode a batch of windows, and time a decoded result's words.

``whisper_decoder.WhisperBatchDecoder`` is the implementation on a Whisper model; tests give the
scheduler a fake one, so that scheduling runs without a model.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable, List, Optional, Protocol, Sequence

if TYPE_CHECKING:
    from ..decoding import DecodingResult
    from ..timing import WordTiming
    from .job import Job

Poll = Callable[[], None]  # called between steps of a batch; it may raise to abandon the batch
OnResult = Callable[[int, "DecodingResult"], None]  # a job's index in the batch and its result


class BatchDecoder(Protocol):
    @property
    def is_multilingual(self) -> bool: ...

    def decode(self, jobs: Sequence["Job"], temperature: float, poll: Poll,
               on_result: Optional[OnResult] = None) -> List["DecodingResult"]:  # fmt: skip
        """One result per job, in order, all decoded as one batch. Where the decoder can tell that a
        job's decoding is over while others' goes on, it may pass that job's result to
        ``on_result`` first (then before a later ``poll``)."""

    def encoded_s(self, job: "Job") -> float:
        """Seconds of audio the encoder runs on for ``job``'s window: a batch's encoder time and its
        decoding cache grow with their sum."""

    def word_timings(self, job: "Job", result: "DecodingResult") -> List["WordTiming"]:
        """The words of ``result`` with times in seconds from the start of ``job``'s audio."""
