"""Word-level timestamps: align text tokens to audio positions through the decoder's cross-attention.

A few decoder heads ("alignment heads") attend to the audio where each token is spoken. Their
attention, normalised per audio position and smoothed in time, is a token-by-position similarity
matrix; dynamic time warping finds the best monotonic path through it, and each word's start and
end are where the path enters its first token and the next word's first token.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import TYPE_CHECKING, List, Optional, Sequence, Tuple, TypeVar

import numpy as np
import torch
from torch import Tensor

from .audio import HOP_LENGTH, SAMPLE_RATE_HZ, TOKENS_PER_SECOND
from .tokenizer import Tokenizer

if TYPE_CHECKING:
    from .model import Whisper

PREPEND_PUNCTUATIONS = "\"'“¿([{-"
APPEND_PUNCTUATIONS = "\"'.。,，!！?？:：”)]}、"
SENTENCE_END_MARKS = ".。!！?？"
ArrayLike = TypeVar("ArrayLike", np.ndarray, Tensor)
MAX_MEDIAN_WORD_S = 0.7  # cap on the "typical word" duration used to clip implausibly long words


@dataclass
class WordTiming:
    word: str
    tokens: List[int]
    start: float  # seconds from the start of the window
    end: float
    probability: float


def median_filter(x: ArrayLike, width: int) -> ArrayLike:
    """Median over a sliding window of odd ``width`` along the last axis, reflecting at the edges;
    a tensor stays a tensor on its device, an array stays an array."""
    if width % 2 == 0:
        raise ValueError(f"median filter width must be odd, got {width}")
    half = width // 2
    if width <= 1 or x.shape[-1] <= half:  # reflection needs more samples than half the window
        return x
    if torch.is_tensor(x):
        flat = x.reshape(-1, 1, x.shape[-1])  # reflect padding wants (batch, channels, time)
        padded = torch.nn.functional.pad(flat, (half, half), mode="reflect").reshape(*x.shape[:-1], -1)
        return padded.unfold(-1, width, 1).median(dim=-1).values
    padding = [(0, 0)] * (x.ndim - 1) + [(half, half)]
    windows = np.lib.stride_tricks.sliding_window_view(np.pad(x, padding, mode="reflect"), width, axis=-1)
    return np.median(windows, axis=-1)


def dtw_cost(x: np.ndarray) -> np.ndarray:
    """Cumulative cost (rows+1, cols+1) of monotonic paths from (0, 0) with diagonal/down/right steps.

    Row by row, cost[i, j] = x[i-1, j-1] + min(above_j, cost[i, j-1]) with above_j the cheaper of the
    two cells above. That running minimum has a closed form with prefix sums S of the row:
    cost[i, j] = S_j + min over k <= j of (above_k - S_(k-1)), so each row is a few numpy calls.
    """
    n_rows, n_cols = x.shape
    cost = np.full((n_rows + 1, n_cols + 1), np.inf)
    cost[0, 0] = 0.0
    for i in range(1, n_rows + 1):
        above = np.minimum(cost[i - 1, :-1], cost[i - 1, 1:])
        prefix = np.cumsum(x[i - 1])
        cost[i, 1:] = prefix + np.minimum.accumulate(above - (prefix - x[i - 1]))
    return cost


def dtw_cost_torch(x: Tensor) -> Tensor:
    """``dtw_cost`` on the tensor's own device, one anti-diagonal (cells with i + j = d) at a time:
    each cell there needs only cells of the two diagonals before it."""
    n_rows, n_cols = x.shape
    cost = torch.full((n_rows + 1, n_cols + 1), float("inf"), dtype=torch.float64, device=x.device)
    cost[0, 0] = 0.0
    x = x.to(torch.float64)
    rows_all = torch.arange(1, n_rows + 1, device=x.device)
    for d in range(2, n_rows + n_cols + 1):
        i = rows_all[max(1, d - n_cols) - 1 : min(n_rows, d - 1)]
        j = d - i
        best = torch.minimum(torch.minimum(cost[i - 1, j - 1], cost[i - 1, j]), cost[i, j - 1])
        cost[i, j] = x[i - 1, j - 1] + best
    return cost


def dtw(x: ArrayLike) -> np.ndarray:
    """The cheapest monotonic path through cost matrix ``x``: a (2, path length) array of row and
    column indices (``rows, cols = dtw(x)``). A tensor on a GPU is solved there."""
    if torch.is_tensor(x) and x.device.type != "cpu":
        return dtw_cuda(x)
    if torch.is_tensor(x):
        x = x.numpy()
    return dtw_cpu(x)


def dtw_cpu(x: np.ndarray) -> np.ndarray:
    return _backtrace(dtw_cost(np.asarray(x, dtype=np.float64)))


def dtw_cuda(x: Tensor) -> np.ndarray:
    """``dtw_cpu`` with the cost computed on ``x``'s device (named as in openai-whisper; any device works)."""
    return _backtrace(dtw_cost_torch(x).cpu().numpy())


def _backtrace(cost: np.ndarray) -> np.ndarray:
    i, j = cost.shape[0] - 1, cost.shape[1] - 1
    path = []
    while i > 0 or j > 0:
        path.append((i - 1, j - 1))
        i, j = _previous_cell(cost, i, j)
    return np.array(path[::-1]).T


def _previous_cell(cost: np.ndarray, i: int, j: int) -> Tuple[int, int]:
    if i == 0:
        return i, j - 1
    if j == 0:
        return i - 1, j
    diagonal, up, left = cost[i - 1, j - 1], cost[i - 1, j], cost[i, j - 1]
    if diagonal < up and diagonal < left:
        return i - 1, j - 1
    if up < diagonal and up < left:
        return i - 1, j
    return i, j - 1


def _alignment_matrix(
    model: "Whisper", weights: Sequence[Optional[Tensor]], num_frames: int, medfilt_width: int, qk_scale: float
) -> np.ndarray:
    """Token-by-position similarity from the alignment heads of one audio's cross-attention weights."""
    heads = model.alignment_heads.nonzero().tolist()
    stacked = torch.stack([weights[layer][0, head] for layer, head in heads]).float()
    n_positions = max(1, min(stacked.shape[-1], num_frames // 2))
    # The decoder gives softmax weights; softmax(scale * log w) over the kept positions equals
    # softmax(scale * qk) there, so this matches re-normalising the raw attention logits.
    log_weights = stacked[..., :n_positions].clamp_min(1e-30).log()
    attention = (log_weights * qk_scale).softmax(dim=-1)
    std, mean = torch.std_mean(attention, dim=-2, keepdim=True, unbiased=False)
    normalised = ((attention - mean) / std.clamp_min(1e-12)).cpu().numpy()
    return median_filter(normalised, medfilt_width).mean(axis=0)


def _text_token_probabilities(logits: Tensor, n_sot: int, text_tokens: List[int], eot: int) -> np.ndarray:
    """Probability the model gave each text token (over text tokens only) where it was predicted."""
    probs = logits[n_sot : n_sot + len(text_tokens), :eot].float().softmax(dim=-1)
    return probs[torch.arange(len(text_tokens)), torch.tensor(text_tokens)].cpu().numpy()


def _word_timings(
    tokenizer: Tokenizer, text_tokens: List[int], token_probs: np.ndarray, rows: np.ndarray, cols: np.ndarray
) -> List[WordTiming]:
    words, word_tokens = tokenizer.split_to_word_tokens(text_tokens + [tokenizer.eot])
    if len(word_tokens) <= 1:
        return []
    boundaries = np.concatenate([[0], np.cumsum([len(t) for t in word_tokens[:-1]])])
    first_col_of_row = np.diff(rows, prepend=-1).astype(bool)  # the path enters each token row once
    row_times_s = cols[first_col_of_row] / TOKENS_PER_SECOND
    return [
        WordTiming(word, tokens, float(row_times_s[begin]), float(row_times_s[end]),
                   float(np.mean(token_probs[begin:end])))
        for word, tokens, begin, end in zip(words[:-1], word_tokens[:-1], boundaries[:-1], boundaries[1:])
    ]  # fmt: skip


def find_alignment(
    model: "Whisper",
    tokenizer: Tokenizer,
    text_tokens: List[int],
    mel: Optional[Tensor],
    num_frames: int,
    *,
    medfilt_width: int = 7,
    qk_scale: float = 1.0,
    audio_features: Optional[Tensor] = None,
) -> List[WordTiming]:
    """Word timings (seconds from the window start) of ``text_tokens`` spoken in one mel window.

    ``mel`` is (n_mels, frames) and is encoded as given (3000 frames or fewer); ``num_frames`` is
    how many of its frames hold real audio: words are placed only there. A caller that already
    encoded the window passes its ``audio_features`` (n_audio_ctx, n_state) and may give ``mel=None``.
    """
    text_tokens = [t for t in text_tokens if t < tokenizer.eot]
    if not text_tokens:
        return []
    n_sot = len(tokenizer.sot_sequence)
    tokens = [*tokenizer.sot_sequence, tokenizer.no_timestamps, *text_tokens, tokenizer.eot]
    with torch.inference_mode():
        if audio_features is None:
            features = model.embed_audio(mel.unsqueeze(0).to(model.device), content_frames=num_frames)
        else:
            features = audio_features.unsqueeze(0)
        cache = model.decoder.new_cache(features)
        logits, weights = model.decoder(torch.tensor([tokens], device=model.device), cache, want_weights=True)
        token_probs = _text_token_probabilities(logits[0], n_sot, text_tokens, tokenizer.eot)
    return align_words(model, tokenizer, text_tokens, weights, num_frames, token_probs, n_sot,
                       medfilt_width=medfilt_width, qk_scale=qk_scale)  # fmt: skip


def align_words(
    model: "Whisper",
    tokenizer: Tokenizer,
    text_tokens: List[int],
    weights: Sequence[Optional[Tensor]],
    num_frames: int,
    token_probs: np.ndarray,
    first_row: int,
    *,
    medfilt_width: int = 7,
    qk_scale: float = 1.0,
) -> List[WordTiming]:
    """Word timings from cross-attention weights already computed, e.g. while decoding.

    ``weights`` holds per decoder layer (1, heads, rows, positions); rows ``first_row`` onwards are
    the positions that predicted each text token and then end-of-text.
    """
    text_tokens = [t for t in text_tokens if t < tokenizer.eot]
    if not text_tokens:
        return []
    matrix = _alignment_matrix(model, weights, num_frames, medfilt_width, qk_scale)
    rows, cols = dtw(-matrix[first_row : first_row + len(text_tokens) + 1])
    return _word_timings(tokenizer, text_tokens, np.asarray(token_probs)[: len(text_tokens)], rows, cols)


def merge_punctuations(alignment: List[WordTiming], prepended: str, appended: str) -> List[WordTiming]:
    """Attach opening punctuation to the word after it and closing punctuation to the word before it.

    The word keeps its own times; the punctuation's tokens join its token list.
    """
    joined: List[WordTiming] = []
    opening: List[WordTiming] = []
    for timing in alignment:
        if timing.word.startswith(" ") and timing.word.strip() in prepended:
            opening.append(timing)
            continue
        joined.append(_prefixed(opening, timing))
        opening = []
    joined.extend(opening)  # opening marks with nothing after them stay as they are
    merged: List[WordTiming] = []
    for timing in joined:
        if merged and not merged[-1].word.endswith(" ") and timing.word in appended:
            merged[-1].word += timing.word
            merged[-1].tokens = merged[-1].tokens + timing.tokens
        else:
            merged.append(timing)
    return merged


def _prefixed(opening: List[WordTiming], timing: WordTiming) -> WordTiming:
    if not opening:
        return timing
    word = "".join(o.word for o in opening) + timing.word
    tokens = [t for o in opening for t in o.tokens] + timing.tokens
    return WordTiming(word, tokens, timing.start, timing.end, timing.probability)


def _duration_limits(alignment: List[WordTiming]) -> Tuple[float, float]:
    """(typical word duration, longest plausible word duration) in seconds."""
    durations = np.array([t.end - t.start for t in alignment])
    durations = durations[durations.nonzero()]
    median_s = min(MAX_MEDIAN_WORD_S, float(np.median(durations))) if len(durations) else 0.0
    return median_s, 2 * median_s


def _clip_words_at_sentence_ends(alignment: List[WordTiming], max_s: float) -> None:
    """A sentence-final mark, or the word after one, that lasts too long has swallowed a pause: clip it."""
    for previous, timing in zip(alignment, alignment[1:]):
        if timing.end - timing.start <= max_s:
            continue
        if timing.word in SENTENCE_END_MARKS:
            timing.end = timing.start + max_s
        elif previous.word in SENTENCE_END_MARKS:
            timing.start = timing.end - max_s


def _group_by_segment(alignment: List[WordTiming], token_counts: List[int]) -> List[List[WordTiming]]:
    """Words per segment: a word belongs to the segment its first token is in."""
    groups, index = [], 0
    for count in token_counts:
        group, taken = [], 0
        while index < len(alignment) and taken < count:
            group.append(alignment[index])
            taken += len(alignment[index].tokens)
            index += 1
        groups.append(group)
    return groups


def _word_dict(timing: WordTiming, offset_s: float) -> dict:
    return dict(word=timing.word, start=round(offset_s + timing.start, 2), end=round(offset_s + timing.end, 2),
                probability=timing.probability)  # fmt: skip


def _fit_first_word(words: List[dict], last_speech_s: float, median_s: float, max_s: float) -> None:
    """A long first word right after a long silence has absorbed that silence: shorten it."""
    first = words[0]
    long_gap = first["end"] - last_speech_s > median_s * 4
    too_long = first["end"] - first["start"] > max_s
    pair_too_long = len(words) > 1 and words[1]["end"] - first["start"] > max_s * 2
    if not (long_gap and (too_long or pair_too_long)):
        return
    if len(words) > 1 and words[1]["end"] - words[1]["start"] > max_s:
        boundary = max(words[1]["end"] / 2, words[1]["end"] - max_s)
        first["end"] = words[1]["start"] = boundary
    first["start"] = max(0, first["end"] - max_s)


def _fit_segment_to_words(segment: dict, words: List[dict], median_s: float) -> None:
    """Make segment and word boundaries agree, trusting the segment's timestamps when a word looks stretched."""
    first, last = words[0], words[-1]
    if segment["start"] < first["end"] and segment["start"] - 0.5 > first["start"]:
        first["start"] = max(0, min(first["end"] - median_s, segment["start"]))
    else:
        segment["start"] = first["start"]
    if segment["end"] > last["start"] and segment["end"] + 0.5 < last["end"]:
        last["end"] = max(last["start"] + median_s, segment["end"])
    else:
        segment["end"] = last["end"]


def add_word_timestamps(
    *,
    segments: List[dict],
    model: "Whisper",
    tokenizer: Tokenizer,
    mel: Optional[Tensor],
    num_frames: int,
    prepend_punctuations: str = PREPEND_PUNCTUATIONS,
    append_punctuations: str = APPEND_PUNCTUATIONS,
    last_speech_timestamp: float = 0.0,
    **kwargs,
) -> None:
    """Give each segment of one window a "words" list (word, start, end, probability), in place.

    All segments must come from the window ``mel``, which starts at frame ``segments[0]["seek"]``.
    """
    if not segments:
        return
    per_segment = [[t for t in s["tokens"] if t < tokenizer.eot] for s in segments]
    all_tokens = list(itertools.chain.from_iterable(per_segment))
    alignment = find_alignment(model, tokenizer, all_tokens, mel, num_frames, **kwargs)
    median_s, max_s = _duration_limits(alignment)
    if median_s > 0:
        _clip_words_at_sentence_ends(alignment, max_s)
    alignment = merge_punctuations(alignment, prepend_punctuations, append_punctuations)
    offset_s = segments[0]["seek"] * HOP_LENGTH / SAMPLE_RATE_HZ
    groups = _group_by_segment(alignment, [len(tokens) for tokens in per_segment])
    for segment, group in zip(segments, groups):
        words = [_word_dict(timing, offset_s) for timing in group if timing.word]
        if words:
            _fit_first_word(words, last_speech_timestamp, median_s, max_s)
            _fit_segment_to_words(segment, words, median_s)
            last_speech_timestamp = segment["end"]
        segment["words"] = words
