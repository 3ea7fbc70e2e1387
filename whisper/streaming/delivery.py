"""What decoded windows become: guarded, re-decoded hotter when unreliable, and sent to their
stream as events with word times."""
from __future__ import annotations

import collections
import logging
from dataclasses import replace
from typing import TYPE_CHECKING, Sequence

from ..numbers import digits_as_numerals, pieces_as_numerals
from .decoder import BatchDecoder, Poll
from .job import Job
from .options import EngineOptions
from ..policy import likeliest, needs_fallback, partial_rejection_reason, rejection_reason, retry_hotter
from .stream import Stream
from .types import Word

if TYPE_CHECKING:
    from ..decoding import DecodingResult

log = logging.getLogger(__name__)


class Delivery:
    def __init__(self, decoder: BatchDecoder, options: EngineOptions, counters: collections.Counter, poll: Poll):
        self.decoder, self.options, self.counters, self._poll = decoder, options, counters, poll

    def finals(self, streams: Sequence[Stream], fallback: bool) -> None:
        """Emit each stream's finals that have a result, in order. Without ``fallback`` (in the middle
        of a batch, where the model is busy) a final that needs one waits for the next tick."""
        guard = self.options.guard
        for stream in streams:
            while (ready := stream.ready_final()) is not None:
                job, result = ready
                if not fallback and needs_fallback(result, guard):
                    break
                result = self._with_fallback(job, result)
                reason = rejection_reason(result, job.duration_s, guard)
                if reason is not None:
                    # its words may be a caller's (a card number): their count only, never the text
                    log.debug("stream %s segment %d: dropped (%s): %d words", stream.id,
                              job.segment_index, reason, len(result.text.split()))
                    result = replace(result, text="", tokens=[])
                stream.pop_final()
                if result.text and result.language_probs:
                    stream.language.add(result.language_probs, job.duration_s)
                if result.text or job.had_partial:
                    self._emit(stream, job, result)

    def partial(self, stream: Stream, job: Job, result: "DecodingResult") -> None:
        """Show a decoded partial of ``stream`` if it passes the guards."""
        if partial_rejection_reason(result, job.duration_s, self.options.guard) is None:
            self._emit(stream, job, result)

    def _with_fallback(self, job: Job, result: "DecodingResult") -> "DecodingResult":
        """Hotter decodes until one is reliable; if none is, the likeliest of them all that does
        not loop (greedy included), not the last random sample."""
        guard = self.options.guard
        tried = [result]

        def decode_at(temperature: float) -> "DecodingResult":
            tried.append(self.decoder.decode([job], temperature, self._poll)[0])
            return tried[-1]

        final = retry_hotter(decode_at, guard.fallback.temperatures[1:], lambda r: needs_fallback(r, guard), result)
        return final if not needs_fallback(final, guard) else likeliest(tried, guard)

    def _emit(self, stream: Stream, job: Job, result: "DecodingResult") -> None:
        result = replace(result, text=digits_as_numerals(result.text, result.language))
        words = ()
        if job.kind == "final" and result.text and job.stream_options.word_timestamps:
            timings = [t for t in self.decoder.word_timings(job, result) if t.word.strip()]
            written = pieces_as_numerals([t.word for t in timings], result.language)
            words = tuple(
                Word(text, round(job.start_s + t.start, 3), round(job.start_s + t.end, 3), float(t.probability))
                for text, t in zip(written, timings)
            )  # fmt: skip
        self.counters["partials" if job.kind == "partial" else "finals"] += 1
        stream.emit(job.event(result, words))

