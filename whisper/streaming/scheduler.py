"""What the decoder runs, and when, for all open streams: one tick at a time, on an injected clock.

Every tick drains every stream and runs one batch: finished utterances ("finals") first, oldest
first, with utterances whose caller has just paused decoded speculatively alongside; only when
none waits, the open utterances that are due a "partial". A running batch polls the streams
between encoder chunks and decoding steps (``BatchDecoder``'s ``poll``), so endpoints are found and
ready finals sent while it runs, and a final that falls due abandons a batch of partials. When the
model can't keep up, partials are thinned (never finals) and ``stats().behind`` says so.

No threads here: ``engine.StreamingEngine`` calls ``tick`` from its scheduler thread, tests and
simulations from their own, with a fake decoder and clock where they like.
"""
from __future__ import annotations

import collections
import itertools
import logging
import threading
import time
from typing import TYPE_CHECKING, Callable, Dict, List, Optional, Sequence, Tuple

from .budget import PartialBudget
from .capacity import Capacity
from .decoder import BatchDecoder, OnResult
from .delivery import Delivery
from .job import Job
from .options import EngineOptions
from .stream import Stream
from .types import EngineStats

if TYPE_CHECKING:
    from ..decoding import DecodingResult

log = logging.getLogger(__name__)

Clock = Callable[[], float]  # seconds, monotonic

_BUDGET_WINDOW_S = 2.0
_POLL_INTERVAL_S = 0.1
_SPECULATE_FRAMES = 11  # once the post-roll is in (220 ms of silence), decode the utterance as it will end


class _Preempted(Exception):
    """Raised from a poll to abandon a batch of partials."""


class Scheduler:
    def __init__(self, decoder: BatchDecoder, options: EngineOptions = EngineOptions(), clock: Clock = time.monotonic,
                 paced: bool = False):  # fmt: skip
        self.decoder, self.options, self.clock = decoder, options, clock
        self.paced = paced  # in real time partials keep to their budget (simulations step on audio time)
        self._streams: Dict[str, Stream] = {}
        self._lock = threading.Lock()  # streams are added from other threads
        self._counters: collections.Counter = collections.Counter()
        self._delivery = Delivery(decoder, options, self._counters, self._poll)
        self._budget = PartialBudget(options.partial_budget, _BUDGET_WINDOW_S)
        self.capacity = Capacity()  # seconds per window, measured (engine warm-up, every batch)
        self._partial_interval_s = 0.0
        self._lag_s = 0.0
        self._behind = False
        self._last_poll_s = clock()
        self._preemptible = False  # a batch of partials is running: a final due now preempts it

    def calibrate(self) -> None:
        """A first measure of capacity from the decoder's warm-up, if it has one."""
        warm_up = getattr(self.decoder, "warm_up", None)
        if warm_up is not None:
            took_s = warm_up()
            self.capacity.record(1, took_s)
            log.info("streaming engine: %.0f ms per window on this machine (warm-up)", took_s * 1000)

    def add(self, stream: Stream) -> None:
        with self._lock:
            if stream.id in self._streams:
                raise ValueError(f"stream {stream.id!r} is already open")
            self._streams[stream.id] = stream

    def streams(self) -> List[Stream]:
        with self._lock:
            return list(self._streams.values())

    def _stream_of(self, job: Job) -> Optional[Stream]:
        with self._lock:
            return self._streams.get(job.stream_id)

    def stats(self) -> EngineStats:
        streams, now_s = self.streams(), self.clock()
        oldest_s = min((s.oldest_final_at_s for s in streams if s.has_finals), default=now_s)
        lag_s = max(self._lag_s, now_s - oldest_s)
        return EngineStats(
            active_streams=len(streams), queued_audio_s=sum(s.queued_audio_s for s in streams), lag_s=lag_s,
            behind=lag_s > self.options.behind_after_s, partials_skipped=self._counters["partials_skipped"],
            finals_emitted=self._counters["finals"], partials_emitted=self._counters["partials"],
            audio_dropped_s=self._counters["dropped_ms"] / 1000,
            window_cost_s=self.capacity.window_s or 0.0, partial_interval_s=self._partial_interval_s,
        )  # fmt: skip

    def tick(self) -> bool:
        """Drain every stream and run one batch; returns whether the decoder ran."""
        streams = self.streams()
        self._drain(streams)
        self._delivery.finals(streams, fallback=True)
        finals = sorted((job for s in streams for job in s.undecoded_finals()), key=lambda job: job.ready_at_s)
        finals = self._fitting(finals)
        # Speculative windows ride along with finals: a row more in a batch costs far less than a
        # batch of its own (a decoding step's cost grows far slower than its rows).
        speculative = [job for s in streams if (job := s.speculative_job(_SPECULATE_FRAMES)) is not None]
        speculative = self._fitting(speculative, finals)
        ran = bool(finals or speculative)
        if ran:
            # So may utterances' first partials (options.first_partial_riders): with many calls a
            # batch of finals nearly always waits, and a first partial behind it comes late.
            room = min(self.options.first_partial_riders, self.options.max_batch - len(finals) - len(speculative))
            firsts = (job for s in streams if s.wants_first_partial and (job := s.partial_job()) is not None)
            riders = self._run_finals(finals, speculative + list(itertools.islice(firsts, max(0, room))))
            self._delivery.finals(streams, fallback=True)
            self._deliver_partials(riders)  # after the finals they rode with
        else:
            ran = self._run_partials(streams)
        for stream in streams:
            if stream.done:
                self._retire(stream)
        self._report_backlog()
        return ran

    def _fitting(self, jobs: List[Job], taken: Sequence[Job] = ()) -> List[Job]:
        """The first ``jobs`` that fit in one batch beside ``taken``: options.max_batch windows and
        options.max_batch_audio_s of encoded audio (a batch takes at least one window)."""
        rows, audio_s = len(taken), sum(self.decoder.encoded_s(job) for job in taken)
        fitting: List[Job] = []
        for job in jobs:
            audio_s += self.decoder.encoded_s(job)
            if rows >= self.options.max_batch or (rows and audio_s > self.options.max_batch_audio_s):
                break
            fitting.append(job)
            rows += 1
        return fitting

    def _drain(self, streams: List[Stream]) -> None:
        now_s = self.clock()
        for stream in streams:
            self._counters["dropped_ms"] += int(stream.drain(now_s) * 1000)
        self._last_poll_s = self.clock()

    def _poll(self) -> None:
        """Called between encoder chunks and decoding steps: take in new audio and send the finals
        that are ready, so that a running batch doesn't hold back endpoints or speculated finals."""
        if self.clock() - self._last_poll_s < _POLL_INTERVAL_S:
            return
        streams = self.streams()
        self._drain(streams)
        self._delivery.finals(streams, fallback=False)
        if self._preemptible and any(s.has_finals or s.speculative_job(_SPECULATE_FRAMES) for s in streams):
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
        stream.mark_closed()

    def _decode(self, jobs: List[Job], on_result: Optional[OnResult] = None) -> list:
        started_s = self.clock()
        results = self.decoder.decode(jobs, self.options.guard.fallback.temperatures[0], self._poll, on_result)
        self.capacity.record(len(jobs), self.clock() - started_s)
        return results

    def _run_finals(self, jobs: List[Job], riders: List[Job]) -> List[Tuple[Job, "DecodingResult"]]:
        """Finals, with speculative finals and first partials riding along; returns the partials."""
        started_s = self.clock()
        to_decode = jobs + riders
        accepted = set()

        def accept_early(index: int, result: "DecodingResult") -> None:
            # a final decoded while the batch's longer windows go on: the next poll sends it
            if to_decode[index].kind != "partial":
                accepted.add(index)
                self._accept(to_decode[index], result)

        partials = []
        for index, (job, result) in enumerate(zip(to_decode, self._decode(to_decode, accept_early))):
            if job.kind == "partial":
                partials.append((job, result))
            elif index not in accepted:
                self._accept(job, result)
        self._lag_s = self.clock() - started_s
        return partials

    def _accept(self, job: Job, result: "DecodingResult") -> None:
        """A final's or a speculative final's result, back to its stream."""
        stream = self._stream_of(job)
        if stream is None:
            return
        if job.speculative:
            stream.accept_speculation(job, result)
        else:
            stream.accept_final(job, result)

    def _run_partials(self, streams: List[Stream]) -> bool:
        spacing_s = self._partial_spacing_s(streams)
        due = [job for s in streams if (job := s.partial_job(spacing_s)) is not None]
        if not due:
            return False
        # In real time, leave finals most of the scheduler's time: over budget, partials stay due and
        # go out later.
        if self.paced and self._budget.exhausted(self.clock()):
            return False
        started_s = self.clock()
        try:
            self._decode_partials(streams, due)
        finally:
            self._budget.record(self.clock(), self.clock() - started_s)
        return True

    def _partial_spacing_s(self, streams: List[Stream]) -> float:
        """In real time: partials of all talking streams kept within their budget's share by the
        measured cost of a window (capacity.py). Simulations decode as if the model were instant."""
        if not self.paced:
            return 0.0
        talking = sum(1 for s in streams if s.talking)
        self._partial_interval_s = self.capacity.partial_interval_s(talking, self.options.partial_budget, 0.0)
        return self._partial_interval_s

    def _decode_partials(self, streams: List[Stream], due: List[Job]) -> None:
        by_id = {s.id: s for s in streams}
        due.sort(key=lambda job: by_id[job.stream_id].partial_priority(job))
        # Thin partials, first partials and then the stalest streams first; to one when another
        # stream's final is about to be due.
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
        self._deliver_partials(list(zip(due, results)))

    def _deliver_partials(self, decoded: List[Tuple[Job, "DecodingResult"]]) -> None:
        for job, result in decoded:
            stream = self._stream_of(job)
            if stream is None or job.segment_index != stream.segment_index:
                continue  # its utterance ended while the batch ran: the final supersedes it
            stream.mark_partial(job)
            self._delivery.partial(stream, job, result)
