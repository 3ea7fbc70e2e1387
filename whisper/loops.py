"""Decoding loops: the same few tokens written again and again, caught while they are decoded.

On audio it cannot follow, Whisper gets stuck and writes one unit until the window's token budget
runs out: "3-3-3-3-...", "9, 9, 9, ..." (a hundred times), "Thank you. Thank you. ...". The
compression ratio sees long loops of prose, not a short number with a tail of one digit.

``LoopRule`` says what is a loop. A unit of tokens written so many times in a row, by what the unit
writes: callers do repeat digits ("0 0 0 0", a card number's 4444) and words ("no, no, no"), but
not one digit more than 8 times (unless the audio holds that many digits, up to 16: see below), nor a phrase
so often that it makes a dozen words. And a stretch
of 16 digits or more written with only two of them (beam search, held to 8 of one digit, wrote
"9, 9, 9, 9, 9, 9, 9, 9, 8, 8, 8, 9, 9, ..." with copies of varying lengths).

A run of one digit longer than that may be real ("4111 1111 1111 1111", "50000000"), and the audio
tells: a digit takes at least ``LoopRule.digit_s`` (0.2 s) to say, so where the window's speech
(``speech_s``: its frames louder than its noise floor) holds every digit written up to the run's end,
the run is kept; where it cannot ("1-8-2-9-0-4-3-3-3-...-3", 23 digits for 3 s of speech), it is a
loop. Without the audio's speech (``speech_s=None``), any such run is a loop.

Once a loop is written, ``LoopFilter`` forbids the tokens that would extend it, so the decoder
writes something else (the rest of what was said, or the end), and ``cut_loops`` keeps the first
copy of each loop (the first token of a stretch of two digits) and removes the rest. A loop is thus
stopped as it grows, in every decode (greedy, sampled, beam search, grammars), and no text keeps one.
"""
from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Dict, FrozenSet, List, Optional, Sequence, Tuple

from .numbers import DIGIT_WORDS

if TYPE_CHECKING:
    from torch import Tensor

    from .tokenizer import Tokenizer

_WORD = re.compile(r"[^\W_]+")
_DIGIT_OF_WORD: Dict[str, str] = {word: digit for table in DIGIT_WORDS.values() for word, digit in table.items()}


@dataclass(frozen=True)
class LoopRule:
    """What is a loop: how many copies in a row of a unit of tokens, and how long a stretch of
    digits written with ``stretch_distinct_digits`` of them or fewer."""

    max_same_digit: int = 8  # one digit written more than this many times in a row ("3 3 3 3 3 3 3 3 3")
    digit_pattern_copies: int = 4  # a pattern of several digits ("2 3 2 3 2 3 2 3")
    phrase_copies: int = 4  # a phrase ("Thank you." x4) ...
    words_in_loop: int = 12  # ... or, for a phrase of few words, as many copies as make this many words
    symbol_copies: int = 8  # punctuation alone ("- - - - - - - -")
    max_unit_tokens: int = 24  # the longest unit looked for
    stretch_digits: int = 16  # this many digits in a row ...
    stretch_distinct_digits: int = 2  # ... written with this many different digits or fewer
    # A digit takes at least this long to say: a longer run of one digit is kept where the speech
    # holds every digit written so far at this many seconds each (Asterisk's and espeak's voices:
    # 0.35-0.75 s of speech per digit; 0.2 at 10 dB SNR, where the estimate shrinks).
    digit_s: float = 0.2
    # ... but never a run of one digit longer than this, whatever the speech: no number a caller
    # reads (a card's 16 digits at most) is one digit this many times, and the speech held the
    # 24 ones tiny.en wrote for the 15 of "4111 1111 1111 1111".
    max_real_run_digits: int = 16

    def __post_init__(self) -> None:
        if self.digit_s <= 0:
            raise ValueError(f"LoopRule.digit_s must be positive, not {self.digit_s!r}")

    def copies(self, unit_text: str) -> int:
        """Copies in a row of a unit that writes ``unit_text`` that make a loop."""
        words = _WORD.findall(unit_text.lower())
        if not words:
            return self.symbol_copies
        digits = [_DIGIT_OF_WORD.get(word, word) for word in words]
        if all(d.isdigit() for d in digits):
            written = "".join(digits)
            if len(set(written)) == 1:  # a loop once the digit is written more than max_same_digit times
                return max(2, self.max_same_digit // len(written) + 1)
            return self.digit_pattern_copies
        return max(self.phrase_copies, -(-self.words_in_loop // len(words)))

    def unit_copies(self, unit: Sequence[int], tokenizer: "Tokenizer") -> int:
        """``copies`` of a unit of tokens, the fewest of its rotations' (a run of it may begin at any of
        its tokens: the filter sees its end, ``cut_loops`` its start, and they must agree)."""
        return min(self.copies(tokenizer.decode(list(unit[k:]) + list(unit[:k]))) for k in range(len(unit)))


def same_digit(unit_text: str) -> bool:
    """Whether a unit writes one digit (once or more: " 1111", "0,") and nothing else but punctuation."""
    return len(set(_text_digits(unit_text) or "")) == 1


def speech_s(mel: "Tensor", content_frames: int) -> float:
    """Seconds of a log-mel window's first ``content_frames`` frames that are louder than its noise
    floor (the 10th percentile of the frames' mean level) by a third of the way to its peak (the
    99th): what a loop's digits are measured against. Noise lowers it, never raises it."""
    import torch  # here: the rule and the cut are pure, and read by modules that must not load torch

    from .audio import FRAMES_PER_SECOND

    level = mel[:, :content_frames].float().mean(dim=0)
    if level.numel() == 0:
        return 0.0
    floor, peak = torch.quantile(level, 0.1), torch.quantile(level, 0.99)
    threshold = floor + max(float(peak - floor) / 3, 0.1)
    return float((level > threshold).sum()) / FRAMES_PER_SECOND


def digits_held(speech: Optional[float], rule: LoopRule) -> Optional[int]:
    """How many digits ``speech`` seconds of speech can hold (None: unknown, none beyond the rule)."""
    return None if speech is None else int(speech / rule.digit_s + 1e-9)


def _digits_in(tokens: Sequence[int], tokenizer: "Tokenizer") -> int:
    return sum(len(_token_digits(token, tokenizer) or "") for token in tokens)


def _fits(written: Sequence[int], held: Optional[int], tokenizer: "Tokenizer") -> bool:
    """Whether every digit ``written`` fits in the speech (a run or stretch that ends there is real)."""
    return held is not None and _digits_in(written, tokenizer) <= held


def _held(unit: Sequence[int], run: Sequence[int], written: Sequence[int], held: Optional[int],
          rule: LoopRule, tokenizer: "Tokenizer") -> bool:  # fmt: skip
    """Whether a ``run`` of ``unit`` that ends ``written`` is real: one digit, no longer than a
    number has, and every digit written fits in the speech."""
    return (same_digit(tokenizer.decode(list(unit))) and _digits_in(run, tokenizer) <= rule.max_real_run_digits
            and _fits(written, held, tokenizer))


def writes_digits(unit_text: str) -> bool:
    """Whether a loop's unit writes digits (numerals or digit words) and nothing else but punctuation."""
    return _text_digits(unit_text) not in (None, "")


@functools.lru_cache(maxsize=65536)
def _text_digits(text: str) -> Optional[str]:
    """The digits a piece of text writes ("" for punctuation alone), or None if it writes other words."""
    digits = [_DIGIT_OF_WORD.get(word, word) for word in _WORD.findall(text.lower())]
    return "".join(digits) if all(d.isdigit() for d in digits) else None


_TOKEN_DIGITS: Dict[str, Dict[int, Optional[str]]] = {}


def _token_digits(token: int, tokenizer: "Tokenizer") -> Optional[str]:
    """The digits a token writes ("" for punctuation, None for other words or a special token)."""
    known = _TOKEN_DIGITS.setdefault(tokenizer.encoding.name, {})
    if token not in known:
        known[token] = _text_digits(tokenizer.decode([token])) if token < tokenizer.eot else None
    return known[token]


def _run_length(tokens: Sequence[int], start: int, period: int) -> int:
    """Length of the run from ``start`` in which every token equals the one ``period`` before it."""
    end = start
    while end + period < len(tokens) and tokens[end] == tokens[end + period]:
        end += 1
    return end - start + period


def _suffix_run(tokens: Sequence[int], period: int) -> int:
    """Length of the longest suffix of ``tokens`` in which every token equals the one ``period`` before it."""
    end = len(tokens) - 1
    while end - period >= 0 and tokens[end] == tokens[end - period]:
        end -= 1
    return len(tokens) - 1 - end + period


def _repeated_unit_at(tokens: Sequence[int], start: int, rule: LoopRule, tokenizer: "Tokenizer",
                      held: Optional[int]) -> Optional[Tuple[int, int]]:  # fmt: skip
    """(tokens to keep, tokens in the loop) of a unit repeated into a loop from ``start``, or None."""
    for period in range(1, rule.max_unit_tokens + 1):
        if start + 2 * period > len(tokens) or tokens[start + period - 1] >= tokenizer.eot:
            return None
        run, unit = _run_length(tokens, start, period), tokens[start : start + period]
        if run >= 2 * period and run >= rule.unit_copies(unit, tokenizer) * period:
            if not _held(unit, tokens[start : start + run], tokens[: start + run], held, rule, tokenizer):
                return period, run
    return None


def _stretch_at(tokens: Sequence[int], start: int, rule: LoopRule, tokenizer: "Tokenizer",
                held: Optional[int]) -> Optional[Tuple[int, int]]:  # fmt: skip
    """(1, tokens in the stretch) of a loop of few digits from ``start``, or None."""
    written, end = "", start
    while end < len(tokens):
        digits = _token_digits(tokens[end], tokenizer)
        if digits is None or len(set(written + digits)) > rule.stretch_distinct_digits:
            break
        written += digits
        end += 1
    starts_with_digit = bool(_token_digits(tokens[start], tokenizer))
    if not starts_with_digit or len(written) < rule.stretch_digits or _fits(tokens[:end], held, tokenizer):
        return None
    return 1, end - start


def cut_loops(tokens: Sequence[int], rule: LoopRule, tokenizer: "Tokenizer", speech: Optional[float] = None
              ) -> Tuple[List[int], Tuple[str, ...]]:  # fmt: skip
    """``tokens`` with every loop cut to its first copy, and the text of each loop that was cut
    (``speech``: seconds of speech in the audio decoded, see ``speech_s``):
    repeated units first ("4-3-3-3-3-..." keeps "4-3"), then stretches of few digits, again until
    none is left (what is left of loops the filter stopped may make a new one: a stretch of 16 digits,
    a 7, another stretch, ... was "9 7, 9 7, 9 7, 9 7, 9 7" once the stretches were cut)."""
    kept, loops, held = list(tokens), (), digits_held(speech, rule)
    while True:
        kept, units = _cut(kept, lambda i, t: _repeated_unit_at(t, i, rule, tokenizer, held), tokenizer)
        kept, stretches = _cut(kept, lambda i, t: _stretch_at(t, i, rule, tokenizer, held), tokenizer)
        if not units and not stretches:
            return kept, loops
        loops += units + stretches


def _cut(tokens: Sequence[int], loop_at: Callable[[int, Sequence[int]], Optional[Tuple[int, int]]],
         tokenizer: "Tokenizer") -> Tuple[List[int], Tuple[str, ...]]:  # fmt: skip
    kept: List[int] = []
    loops: List[str] = []
    i = 0
    while i < len(tokens):
        found = loop_at(i, tokens)
        if found is None:
            kept.append(tokens[i])
            i += 1
            continue
        keep, length = found
        kept += tokens[i : i + keep]
        loops.append(tokenizer.decode(list(tokens[i : i + length])))
        i += length
    return kept, tuple(loops)


class LoopFilter:
    """A ``decoding.LogitFilter`` (not a subclass: decoding.py builds it, and this module must not
    import it): forbids, in each row, the tokens that would extend a loop at the end of its text.
    ``speech``: seconds of speech in each audio decoded (``n_group`` rows each), or None."""

    def __init__(self, rule: LoopRule, tokenizer: "Tokenizer", sample_begin: int,
                 speech: Optional[Sequence[Optional[float]]] = None, n_group: int = 1) -> None:  # fmt: skip
        self.rule, self.tokenizer, self.sample_begin = rule, tokenizer, sample_begin
        self.eot = tokenizer.eot
        self.held = [digits_held(s, rule) for s in speech] if speech is not None else None
        self.n_group = n_group

    def apply(self, logits: "Tensor", tokens: "Tensor") -> None:
        for row in range(tokens.shape[0]):
            sampled = tokens[row, self.sample_begin :].tolist()
            if sampled and sampled[-1] == self.eot:
                continue
            held = None if self.held is None else self.held[row // self.n_group]
            forbidden = self.unit_continuations(sampled, held) + self.stretch_continuations(sampled, held)
            if forbidden:
                logits[row, forbidden] = float("-inf")
                if not bool(logits[row].isfinite().any()):  # a grammar allowed nothing else
                    logits[row, self.eot] = 0.0

    def candidates(self) -> None:
        return None

    def unit_continuations(self, sampled: Sequence[int], held: Optional[int] = None) -> List[int]:
        """The tokens that, written next, would extend a repeated unit that already is a loop."""
        forbidden = []
        for period in range(1, min(self.rule.max_unit_tokens, len(sampled) // 2) + 1):
            if sampled[-1] != sampled[-1 - period]:  # cheap: most steps repeat nothing
                continue
            unit, run = sampled[-period:], _suffix_run(sampled, period)
            if run < 2 * period or max(unit) >= self.eot:
                continue
            if run >= self.rule.unit_copies(unit, self.tokenizer) * period:
                extended = list(sampled) + [sampled[-period]]
                if not _held(unit, extended[-(run + 1):], extended, held, self.rule, self.tokenizer):
                    forbidden.append(sampled[-period])
        return forbidden

    def stretch_continuations(self, sampled: Sequence[int], held: Optional[int] = None) -> List[int]:
        """The digit tokens that would extend a stretch of few digits that already is a loop."""
        written = ""
        for token in reversed(sampled):
            digits = _token_digits(token, self.tokenizer)
            if digits is None or len(written) >= self.rule.stretch_digits:
                break
            written = digits + written
        tail = set(written[-self.rule.stretch_digits :])
        if len(written) < self.rule.stretch_digits or len(tail) > self.rule.stretch_distinct_digits:
            return []
        room = None if held is None else held - _digits_in(sampled, self.tokenizer)  # digits the speech still holds
        return [token for token, digits in _digit_tokens(self.tokenizer)
                if digits <= tail and (room is None or len(_token_digits(token, self.tokenizer) or "") > room)]


_DIGIT_TOKENS: Dict[str, List[Tuple[int, FrozenSet[str]]]] = {}


def _digit_tokens(tokenizer: "Tokenizer") -> List[Tuple[int, FrozenSet[str]]]:
    """Every token that writes digits and nothing else but punctuation, with its digits (found once
    per vocabulary: decoding all of it takes a tenth of a second)."""
    name = tokenizer.encoding.name
    if name not in _DIGIT_TOKENS:
        found = []
        for token in range(tokenizer.eot):
            try:
                digits = _text_digits(tokenizer.decode([token]))
            except KeyError:  # an id the vocabulary leaves unused
                continue
            if digits:
                found.append((token, frozenset(digits)))
        _DIGIT_TOKENS[name] = found
    return _DIGIT_TOKENS[name]
