"""The batch decoder on a Whisper model: the encoder over all windows, then greedy decoding in groups."""
from __future__ import annotations

import collections
import time
from dataclasses import replace
from typing import TYPE_CHECKING, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from ..audio import HOP_LENGTH, N_SAMPLES, SAMPLE_RATE_HZ, log_mel_window
from ..decoding import DecodingOptions, DecodingResult, DecodingTask
from ..grammar import Grammar, parse_grammar
from ..loops import speech_s
from ..vocabulary import parse_vocabulary
from ..timing import (APPEND_PUNCTUATIONS, PREPEND_PUNCTUATIONS, WordTiming, align_words, find_alignment,
                      merge_punctuations)  # fmt: skip
from ..tokenizer import get_tokenizer
from .decoder import OnResult, Poll
from .job import Job

if TYPE_CHECKING:
    from ..model import Whisper

_ENCODE_WINDOWS = 2  # windows per encoder call: as fast per window as larger calls, with polls between


def _decoding_options(job: Job, temperature: float) -> DecodingOptions:
    options, language = job.stream_options, job.language
    return DecodingOptions(task=options.task, language=language, temperature=temperature,
                           language_candidates=() if language else options.language_candidates,
                           prompt=job.prompt, without_timestamps=True,
                           grammar=None if options.grammar is None else parse_grammar(options.grammar),
                           vocabulary=None if options.vocabulary is None else parse_vocabulary(options.vocabulary))  # fmt: skip


def _as_answer(result: DecodingResult, grammar: Optional[Grammar]) -> DecodingResult:
    """The utterance's part of a grammar's answer as the text ("4711", "sales"), or none."""
    if grammar is None:
        return result
    answer = grammar.utterance_answer(result.text)
    return replace(result, text=answer or "", tokens=result.tokens if answer else [])


def _content_frames(job: Job) -> int:
    """Mel frames of its window that hold the job's audio (the last 30 s of it)."""
    return min(len(job.audio), N_SAMPLES) // HOP_LENGTH


def _in_batch(on_result: Optional[OnResult], rows: List[int], grammar: Optional[Grammar]) -> Optional[OnResult]:
    """``on_result`` for a task that decodes the jobs ``rows`` of a batch."""
    if on_result is None:
        return None
    return lambda row, result: on_result(rows[row], _as_answer(result, grammar))


class WhisperBatchDecoder:
    """Every window is the last 30 s of its job's audio, padded as Whisper was trained."""

    def __init__(self, model: "Whisper"):
        self.model = model

    @property
    def is_multilingual(self) -> bool:
        return self.model.is_multilingual

    @torch.no_grad()
    def decode(self, jobs: Sequence[Job], temperature: float, poll: Poll,
               on_result: Optional[OnResult] = None) -> List[DecodingResult]:  # fmt: skip
        features, speech = self._encode(jobs, poll)
        groups: Dict[DecodingOptions, List[int]] = collections.defaultdict(list)
        for i, job in enumerate(jobs):
            groups[_decoding_options(job, temperature)].append(i)
        results: List[Optional[DecodingResult]] = [None] * len(jobs)
        for options, rows in groups.items():
            longest_s = max(len(jobs[i].audio) for i in rows) / SAMPLE_RATE_HZ
            options = replace(options, sample_len=min(224, int(12 + 8 * longest_s)))
            task = DecodingTask(self.model, options, collect_alignment=True, on_step=poll,
                                on_result=_in_batch(on_result, rows, options.grammar))
            priors = None if options.language else [dict(jobs[i].language_prior) for i in rows]
            decoded = task.run(features[rows], language_priors=priors, speech=[speech[i] for i in rows])
            for i, result in zip(rows, decoded):
                results[i] = _as_answer(result, options.grammar)
        return results  # type: ignore[return-value]

    def _encode(self, jobs: Sequence[Job], poll: Poll) -> Tuple[torch.Tensor, List[float]]:
        """Each window's audio features, and its seconds of speech (``loops.speech_s``)."""
        features, speech = [], []
        for first in range(0, len(jobs), _ENCODE_WINDOWS):
            group = jobs[first : first + _ENCODE_WINDOWS]
            mel = torch.stack([log_mel_window(job.audio[-N_SAMPLES:], self.model.dims.n_mels) for job in group])
            content_frames = [_content_frames(job) for job in group]
            features.append(self.model.embed_audio(mel.to(self.model.device), content_frames=content_frames))
            speech += [speech_s(window, frames) for window, frames in zip(mel, content_frames)]
            poll()
        return torch.cat(features), speech

    def encoded_s(self, job: Job) -> float:
        """The short path's length where the model takes it, else 30 s (Whisper.encoded_frames)."""
        return self.model.encoded_frames(_content_frames(job)) * HOP_LENGTH / SAMPLE_RATE_HZ

    @torch.no_grad()
    def warm_up(self) -> float:
        """Decode a 2 s window of faint noise twice (the first builds the kernels a first call
        would wait for); returns the seconds the second took: a first measure of capacity."""
        rng = np.random.default_rng(0)
        audio = (rng.standard_normal(2 * SAMPLE_RATE_HZ) * 1e-3).astype(np.float32)
        mel = log_mel_window(audio, self.model.dims.n_mels)[None].to(self.model.device)
        options = DecodingOptions(language=None if self.is_multilingual else "en", without_timestamps=True,
                                  sample_len=16)
        for _ in range(2):
            started_s = time.perf_counter()
            features = self.model.embed_audio(mel, content_frames=[len(audio) // HOP_LENGTH])
            DecodingTask(self.model, options, collect_alignment=True).run(features)
        return time.perf_counter() - started_s

    @torch.no_grad()
    def word_timings(self, job: Job, result: DecodingResult) -> List[WordTiming]:
        """From the cross-attention the decode recorded (or, after a fallback, a new pass)."""
        tokenizer = get_tokenizer(self.model.is_multilingual, num_languages=self.model.num_languages,
                                  language=result.language, task=job.stream_options.task)  # fmt: skip
        num_frames = len(job.audio) // HOP_LENGTH
        if result.cross_attention is not None:
            first_row = len(result.cross_attention[0][0, 0]) - len(result.tokens) - 1
            timings = align_words(self.model, tokenizer, result.tokens, result.cross_attention, num_frames,
                                  np.asarray(result.token_probs), first_row)  # fmt: skip
        else:
            timings = find_alignment(self.model, tokenizer, result.tokens, None, num_frames,
                                     audio_features=result.audio_features)  # fmt: skip
        return merge_punctuations(timings, PREPEND_PUNCTUATIONS, APPEND_PUNCTUATIONS)
