"""The streaming scheduler without a model: a fake batch decoder, a hand-driven clock, synthetic audio."""
from __future__ import annotations

from typing import Callable, List, Optional, Sequence, Tuple

import numpy as np

from whisper.decoding import DecodingResult
from whisper.streaming.job import Job
from whisper.text_metrics import compression_ratio
from whisper.timing import WordTiming

SCRIPT = ("Thank you for calling. Please enter the number of the extension you wish to reach, followed by "
          "the pound key. Or stay on the line. An operator will answer your call as soon as someone becomes "
          "available. Goodbye.").split()  # fmt: skip


class ManualClock:
    """Seconds that pass only when a test says so."""

    def __init__(self, now_s: float = 1000.0):
        self.now_s = now_s

    def __call__(self) -> float:
        return self.now_s

    def advance(self, seconds: float) -> None:
        self.now_s += seconds


def decoded(text: str, avg_logprob: float = -0.2, no_speech_prob: float = 0.02,
            temperature: float = 0.0) -> DecodingResult:  # fmt: skip
    return DecodingResult(audio_features=None, language="en", tokens=list(range(len(text.split()))), text=text,
                          avg_logprob=avg_logprob, no_speech_prob=no_speech_prob, temperature=temperature,
                          compression_ratio=compression_ratio(text))  # fmt: skip


def script_reply(job: Job, temperature: float) -> DecodingResult:
    """Two words of SCRIPT per second of audio: the same audio always gives the same words."""
    n_words = max(1, int(job.duration_s * 2))
    return decoded(" ".join(SCRIPT[:n_words]), temperature=temperature)


Reply = Callable[[Job, float], DecodingResult]


class FakeDecoder:
    """Answers every window with ``reply``; a batch takes ``batch_s`` on the clock, then polls once."""

    is_multilingual = False

    def __init__(self, clock: ManualClock, reply: Reply = script_reply, batch_s: float = 0.0):
        self.clock, self.reply, self.batch_s = clock, reply, batch_s
        # Rows end one after another, each its share of batch_s apart, and (where the scheduler
        # asks) each result is passed on as its row ends, then polled, as greedy decoding does.
        self.rows_end_apart = False
        self.batches: List[List[Tuple[str, str]]] = []  # per batch: (stream id, "final"/"partial"/"speculative")
        self.temperatures: List[float] = []
        self.during_next_batch: Optional[Callable[[], None]] = None  # what happens while the next batch runs

    def decode(self, jobs: Sequence[Job], temperature: float, poll: Callable[[], None],
               on_result: Optional[Callable[[int, DecodingResult], None]] = None) -> List[DecodingResult]:  # fmt: skip
        self.batches.append([(job.stream_id, "speculative" if job.speculative else job.kind) for job in jobs])
        self.temperatures.append(temperature)
        if self.during_next_batch is not None:
            happening, self.during_next_batch = self.during_next_batch, None
            happening()
        results = [self.reply(job, temperature) for job in jobs]
        if self.rows_end_apart and on_result is not None:
            for index, result in enumerate(results):
                self.clock.advance(self.batch_s / len(jobs))
                on_result(index, result)
                poll()
            return results
        self.clock.advance(self.batch_s)
        poll()
        return results

    def encoded_s(self, job: Job) -> float:
        return job.duration_s

    def word_timings(self, job: Job, result: DecodingResult) -> List[WordTiming]:
        """The words spread evenly over the window."""
        words = result.text.split()
        step_s = job.duration_s / max(1, len(words))
        return [WordTiming(" " + word, [i], i * step_s, (i + 1) * step_s, 0.9) for i, word in enumerate(words)]


def speech(seconds: float, rate_hz: int = 8000, seed: int = 0) -> bytes:
    """Broadband noise at about -20 dBFS: speech to the VAD (loud, and no steady spectral peak),
    with a 40 ms gap every second (at 0.5 s, 1.5 s, ...) as speech has between words: without
    any, the VAD takes a steady sound for line noise once it has lasted its floor_window_s."""
    samples = np.random.default_rng(seed).normal(0, 0.1, int(seconds * rate_hz))
    for gap_start in range(rate_hz // 2, len(samples) - rate_hz // 25, rate_hz):
        samples[gap_start : gap_start + rate_hz // 25] = 0.0
    return (np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes()
