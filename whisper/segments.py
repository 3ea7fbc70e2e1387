"""Turning one window's decoded tokens into transcript segments, and where the next window starts."""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional

from .audio import FRAMES_PER_SECOND, N_FRAMES, N_SAMPLES_PER_TOKEN, SAMPLE_RATE_HZ
from .decoding import DecodingResult
from .tokenizer import Tokenizer

TIME_PRECISION_S = N_SAMPLES_PER_TOKEN / SAMPLE_RATE_HZ  # 0.02 s per timestamp step
FRAMES_PER_TIMESTAMP = round(TIME_PRECISION_S * FRAMES_PER_SECOND)  # 2 mel frames per step


@dataclass(frozen=True)
class Window:
    """A stretch of up to 30 s of the input: ``n_frames`` real mel frames from frame ``seek``."""

    seek: int
    n_frames: int

    @property
    def start_s(self) -> float:
        return self.seek / FRAMES_PER_SECOND

    @property
    def duration_s(self) -> float:
        return self.n_frames / FRAMES_PER_SECOND

    @property
    def padded_end_s(self) -> float:
        """Where the 30 s the model saw ends (past the audio for the last window)."""
        return (self.seek + N_FRAMES) / FRAMES_PER_SECOND

    @property
    def end_seek(self) -> int:
        return self.seek + self.n_frames


@dataclass(frozen=True)
class WindowSegments:
    segments: List[dict]
    next_seek: int  # frame where the next window starts
    single_timestamp_ending: bool  # the last segment ended at the window's end, open


def new_segment(tokenizer: Tokenizer, seek: int, start_s: float, end_s: float, tokens: List[int],
                result: DecodingResult) -> dict:  # fmt: skip
    text_tokens = [t for t in tokens if t < tokenizer.eot]
    return dict(
        seek=seek, start=start_s, end=end_s, text=tokenizer.decode(text_tokens), tokens=list(tokens),
        temperature=result.temperature, avg_logprob=result.avg_logprob,
        compression_ratio=result.compression_ratio, no_speech_prob=result.no_speech_prob,
    )  # fmt: skip


def _closed_pair_ends(tokens: List[int], timestamp_begin: int) -> List[int]:
    """Indices just after each pair of consecutive timestamp tokens (an end followed by a start)."""
    return [i + 1 for i in range(len(tokens) - 1) if tokens[i] >= timestamp_begin and tokens[i + 1] >= timestamp_begin]


def split_into_segments(tokenizer: Tokenizer, result: DecodingResult, window: Window) -> WindowSegments:
    """Segments between timestamp pairs; the next window starts at the last closed timestamp, or after
    this window when the text ran to its end."""
    tokens, ts_begin = list(result.tokens), tokenizer.timestamp_begin
    single_ending = len(tokens) >= 2 and tokens[-2] < ts_begin <= tokens[-1]
    cuts = _closed_pair_ends(tokens, ts_begin)
    if not cuts:
        return _one_segment(tokenizer, result, window, single_ending)
    if single_ending:
        cuts.append(len(tokens))
    segments = [
        new_segment(tokenizer, window.seek, window.start_s + (tokens[begin] - ts_begin) * TIME_PRECISION_S,
                    window.start_s + (tokens[end - 1] - ts_begin) * TIME_PRECISION_S, tokens[begin:end], result)
        for begin, end in zip([0] + cuts[:-1], cuts)
    ]  # fmt: skip
    if single_ending:
        next_seek = window.end_seek
    else:
        next_seek = window.seek + (tokens[cuts[-1] - 1] - ts_begin) * FRAMES_PER_TIMESTAMP
    return WindowSegments(segments, next_seek, single_ending)


def _one_segment(tokenizer: Tokenizer, result: DecodingResult, window: Window, single_ending: bool) -> WindowSegments:
    """No closed timestamp pair: the whole window is one segment, up to its last timestamp if any."""
    ts_begin = tokenizer.timestamp_begin
    duration_s = window.duration_s
    timestamps = [t for t in result.tokens if t >= ts_begin]
    if timestamps and timestamps[-1] != ts_begin:
        duration_s = (timestamps[-1] - ts_begin) * TIME_PRECISION_S
    segment = new_segment(tokenizer, window.seek, window.start_s, window.start_s + duration_s, result.tokens, result)
    return WindowSegments([segment], window.end_seek, single_ending)


def clear_empty(segments: List[dict]) -> None:
    """Instantaneous or blank segments keep their place and times but lose their text."""
    for segment in segments:
        if segment["start"] == segment["end"] or not segment["text"].strip():
            segment.update(text="", tokens=[], words=[])


def last_word_end(segments: List[dict]) -> Optional[float]:
    """End of the last timed word, else of the last segment; None without segments."""
    ends = [word["end"] for segment in segments for word in segment.get("words", [])]
    if ends:
        return ends[-1]
    return segments[-1]["end"] if segments else None
