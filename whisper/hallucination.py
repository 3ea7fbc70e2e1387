"""Spotting likely hallucinations from word timings, and skipping the silence around them.

Whisper tends to invent text in long silences. Such text has improbable, very short or very long
words; when a segment like that sits between silences longer than a threshold, transcription
resumes after it instead of keeping it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Tuple

from .audio import FRAMES_PER_SECOND
from .segments import Window, WindowSegments, last_word_end
from .timing import APPEND_PUNCTUATIONS, PREPEND_PUNCTUATIONS

PUNCTUATION = PREPEND_PUNCTUATIONS + APPEND_PUNCTUATIONS
MIN_WORD_PROBABILITY = 0.15
SHORTEST_WORD_S = 0.133
LONGEST_WORD_S = 2.0
EDGE_S = 2.0  # text this close to a window edge may continue in the next window


def word_anomaly_score(word: dict) -> float:
    duration_s = word["end"] - word["start"]
    score = 1.0 if word.get("probability", 0.0) < MIN_WORD_PROBABILITY else 0.0
    if duration_s < SHORTEST_WORD_S:
        score += (SHORTEST_WORD_S - duration_s) * 15
    if duration_s > LONGEST_WORD_S:
        score += duration_s - LONGEST_WORD_S
    return score


def is_segment_anomaly(segment: Optional[dict]) -> bool:
    if segment is None or not segment.get("words"):
        return False
    words = [w for w in segment["words"] if w["word"] not in PUNCTUATION][:8]
    score = sum(word_anomaly_score(w) for w in words)
    return score >= 3 or score + 0.01 >= len(words)


def first_with_words(segments: List[dict]) -> Optional[dict]:
    return next((s for s in segments if s.get("words")), None)


@dataclass(frozen=True)
class SilenceSkip:
    threshold_s: float
    content_frames: int

    @property
    def content_duration_s(self) -> float:
        return self.content_frames / FRAMES_PER_SECOND

    def apply(self, split: WindowSegments, window: Window, last_speech_s: float) -> Tuple[List[dict], int]:
        """(segments to keep, next seek) for one window whose segments carry word timings."""
        segments, next_seek = list(split.segments), split.next_seek
        if not split.single_timestamp_ending:
            next_seek = self._seek_after_last_word(segments, window, next_seek)
        first = first_with_words(segments)
        if is_segment_anomaly(first) and first["start"] - window.start_s > self.threshold_s:
            return [], window.seek + round((first["start"] - window.start_s) * FRAMES_PER_SECOND)
        return self._cut_isolated_anomaly(segments, window, last_speech_s, next_seek)

    def _seek_after_last_word(self, segments: List[dict], window: Window, next_seek: int) -> int:
        end_s = last_word_end(segments)
        if end_s is None or end_s <= window.start_s:
            return next_seek
        if window.padded_end_s - end_s > self.threshold_s:
            return round(end_s * FRAMES_PER_SECOND)
        return window.end_seek

    def _cut_isolated_anomaly(self, segments: List[dict], window: Window, last_speech_s: float,
                              next_seek: int) -> Tuple[List[dict], int]:  # fmt: skip
        """Drop everything from the first anomalous segment with silence (or more anomalies) on both sides."""
        previous_end_s = last_speech_s
        for index, segment in enumerate(segments):
            if not segment.get("words"):
                continue
            if is_segment_anomaly(segment) and self._isolated(segments, index, window, previous_end_s):
                next_seek = round(max(window.start_s + 1, segment["start"]) * FRAMES_PER_SECOND)
                if self.content_duration_s - segment["end"] < self.threshold_s:
                    next_seek = self.content_frames
                return segments[:index], next_seek
            previous_end_s = segment["end"]
        return segments, next_seek

    def _isolated(self, segments: List[dict], index: int, window: Window, previous_end_s: float) -> bool:
        segment = segments[index]
        following = first_with_words(segments[index + 1 :])
        next_start_s = following["words"][0]["start"] if following else window.start_s + window.duration_s
        silence_before = (
            segment["start"] - previous_end_s > self.threshold_s
            or segment["start"] < self.threshold_s
            or segment["start"] - window.start_s < EDGE_S
        )
        silence_after = (
            next_start_s - segment["end"] > self.threshold_s
            or is_segment_anomaly(following)
            or window.padded_end_s - segment["end"] < EDGE_S
        )
        return silence_before and silence_after
