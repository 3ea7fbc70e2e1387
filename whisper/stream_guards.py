"""Guards for streamed utterances against Whisper's inventions on silence, tones and noise (pure functions)."""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional

from .decoding import DecodingResult


@dataclass(frozen=True)
class GuardOptions:
    no_speech_threshold: float = 0.6  # with a low log-prob, this much no-speech probability means silence
    logprob_threshold: float = -1.0  # below it a result is unreliable
    compression_ratio_threshold: float = 2.4  # above it the text loops
    max_repeats: int = 3  # the same word n-gram this many times in a row is a loop
    max_words_per_s: float = 6.0  # faster than any caller speaks


def _repeats(words: list[str], max_repeats: int) -> bool:
    for size in range(1, 6):
        for start in range(0, len(words) - size * max_repeats + 1):
            gram = words[start : start + size]
            if all(words[start + k * size : start + (k + 1) * size] == gram for k in range(1, max_repeats)):
                return True
    return False


def rejection_reason(result: DecodingResult, duration_s: float, options: GuardOptions = GuardOptions()) -> Optional[str]:
    """Why ``result`` should be treated as no speech, or None to keep it."""
    if not result.text.strip():
        return "empty"
    if result.no_speech_prob > options.no_speech_threshold and result.avg_logprob < options.logprob_threshold:
        return "no speech"
    if result.compression_ratio > options.compression_ratio_threshold:
        return "repetitive (compression ratio)"
    words = re.findall(r"\w+", result.text.lower())
    if _repeats(words, options.max_repeats):
        return "repetitive (repeated words)"
    if len(words) > max(3.0, options.max_words_per_s * duration_s):
        return "too many words for the audio"
    if result.avg_logprob < options.logprob_threshold:
        return "low confidence"
    return None


def needs_fallback(result: DecodingResult, options: GuardOptions = GuardOptions()) -> bool:
    """Worth decoding again at a higher temperature (as long-form transcription does)."""
    return (
        result.compression_ratio > options.compression_ratio_threshold
        or result.avg_logprob < options.logprob_threshold
    ) and result.no_speech_prob <= options.no_speech_threshold
