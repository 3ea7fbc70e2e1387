"""IVR grammars: which answers a caller may give, decoded as constraints on Whisper's next token.

A grammar is a frozen description (pure Python: the bridge parses them without torch) (``Digits``, ``Choices``; ``parse_grammar`` reads the dialplan's
form) that builds a ``LogitFilter`` for a decode: at every step only the tokens that can continue
a valid answer keep their logits, and end-of-text only once the answer is complete. ``answer``
turns the decoded text into the canonical form the dialplan compares (``"4711"``, ``"sales"``);
``utterance_answer`` and ``join`` build it from several utterances (a number read in groups).
"""
from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Dict, Optional, Sequence, Tuple, Union

if TYPE_CHECKING:  # the filters need torch; the grammars themselves do not (the bridge parses them)
    from .decoding import LogitFilter
    from .tokenizer import Tokenizer


DIGITS_TRAILING_SILENCE_S = 1.2


@dataclass(frozen=True)
class Digits:
    """A digit string (numerals only in the answer), optionally with * and #."""

    min_digits: int = 1
    max_digits: int = 20
    star_pound: bool = False

    def __post_init__(self) -> None:
        if not 1 <= self.min_digits <= self.max_digits:
            raise ValueError(f"digits grammar needs 1 <= min <= max, not {self.min_digits}-{self.max_digits}")

    @property
    def trailing_silence_s(self) -> Optional[float]:
        """Callers read digit strings in groups with pauses: an utterance ends only after 1.2 s."""
        return DIGITS_TRAILING_SILENCE_S

    @property
    def symbols(self) -> str:
        return "0123456789*#" if self.star_pound else "0123456789"

    def answer(self, text: str) -> Optional[str]:
        """The whole answer: the digits of ``text`` if there are min_digits to max_digits."""
        found = self.utterance_answer(text) or ""
        return found if self.min_digits <= len(found) <= self.max_digits else None

    def utterance_answer(self, text: str) -> Optional[str]:
        """One utterance's part of the answer: callers pause inside a number, so a string can
        span several utterances; any 1 to max_digits symbols are a part."""
        found = "".join(c for c in text if c in self.symbols)
        return found if 1 <= len(found) <= self.max_digits else None

    def join(self, parts: Sequence[str]) -> str:
        """The answer so far from the utterances' parts, in order."""
        return "".join(parts)

    def logit_filter(self, tokenizer: "Tokenizer", sample_begin: int) -> "LogitFilter":
        from .grammar_filters import DigitsFilter

        return DigitsFilter(self, tokenizer, sample_begin)


@dataclass(frozen=True)
class Choices:
    """One of a few words or phrases, e.g. ("sales", "support", "billing") or yes/no."""

    words: Tuple[str, ...]
    synonyms: Dict[str, str] = field(default_factory=dict, compare=False, hash=False)  # said -> answer

    def __post_init__(self) -> None:
        if not self.words or any(not w.strip() for w in self.words):
            raise ValueError("a choices grammar needs at least one non-empty choice")

    @property
    def trailing_silence_s(self) -> Optional[float]:
        return None  # the engine's own

    def spoken_forms(self) -> Dict[str, str]:
        """Normalised spoken form -> the answer it stands for."""
        forms = {normalise(w): w for w in self.words}
        forms.update({normalise(said): answer for said, answer in self.synonyms.items()})
        return forms

    def answer(self, text: str) -> Optional[str]:
        return self.spoken_forms().get(normalise(text))

    def utterance_answer(self, text: str) -> Optional[str]:
        return self.answer(text)

    def join(self, parts: Sequence[str]) -> str:
        """The latest choice counts (a caller who corrects himself)."""
        return parts[-1] if parts else ""

    def logit_filter(self, tokenizer: "Tokenizer", sample_begin: int) -> "LogitFilter":
        from .grammar_filters import TrieFilter, token_trie

        return TrieFilter(token_trie(tokenizer, self.spoken_forms()), tokenizer.eot, sample_begin)


Grammar = Union[Digits, Choices]
YES_NO = Choices(("yes", "no"), synonyms={"yeah": "yes", "yep": "yes", "correct": "yes", "nope": "no"})


@functools.lru_cache(maxsize=256)  # the bridge and the engine read a call's spec per event
def parse_grammar(spec: str) -> Grammar:
    """The dialplan's form: ``digits``, ``digits:4``, ``digits:4-10``, ``digits:4-10:*#``,
    ``yesno``, ``choices:sales|support|billing`` (no commas: they split dialplan arguments)."""
    name, _, rest = spec.strip().partition(":")
    name = name.lower()
    if name == "yesno" and not rest:
        return YES_NO
    if name == "choices" and rest:
        return Choices(tuple(w.strip() for w in rest.split("|") if w.strip()))
    if name == "digits":
        return _parse_digits(rest)
    raise ValueError(f"unknown grammar {spec!r}: use digits[:MIN[-MAX][:*#]], yesno or choices:a|b|c")


def _parse_digits(rest: str) -> Digits:
    lengths, _, symbols = rest.partition(":")
    if symbols not in ("", "*#"):
        raise ValueError(f"digits grammar: extra symbols must be '*#', not {symbols!r}")
    if not lengths:
        return Digits(star_pound=bool(symbols))
    match = re.fullmatch(r"(\d+)(?:-(\d+))?", lengths)
    if match is None:
        raise ValueError(f"digits grammar: length must be N or MIN-MAX, not {lengths!r}")
    low = int(match.group(1))
    return Digits(low, int(match.group(2) or low), bool(symbols))


def normalise(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s']", " ", text.lower()).split())
