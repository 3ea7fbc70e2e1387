"""IVR grammars: which answers a caller may give, decoded as constraints on Whisper's next token.

A grammar is a frozen description (``Digits``, ``Choices``; ``parse_grammar`` reads the dialplan's
form) that builds a ``LogitFilter`` for a decode: at every step only the tokens that can continue
a valid answer keep their logits, and end-of-text only once the answer is complete. ``answer``
turns the decoded text into the canonical form the dialplan compares (``"4711"``, ``"sales"``).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor

from .decoding import LogitFilter
from .tokenizer import Tokenizer

NEG_INF = float("-inf")


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
    def symbols(self) -> str:
        return "0123456789*#" if self.star_pound else "0123456789"

    def answer(self, text: str) -> Optional[str]:
        found = "".join(c for c in text if c in self.symbols)
        return found if self.min_digits <= len(found) <= self.max_digits else None

    def logit_filter(self, tokenizer: Tokenizer, sample_begin: int) -> LogitFilter:
        return DigitsFilter(self, tokenizer, sample_begin)


@dataclass(frozen=True)
class Choices:
    """One of a few words or phrases, e.g. ("sales", "support", "billing") or yes/no."""

    words: Tuple[str, ...]
    synonyms: Dict[str, str] = field(default_factory=dict, compare=False, hash=False)  # said -> answer

    def __post_init__(self) -> None:
        if not self.words or any(not w.strip() for w in self.words):
            raise ValueError("a choices grammar needs at least one non-empty choice")

    def spoken_forms(self) -> Dict[str, str]:
        """Normalised spoken form -> the answer it stands for."""
        forms = {_normalise(w): w for w in self.words}
        forms.update({_normalise(said): answer for said, answer in self.synonyms.items()})
        return forms

    def answer(self, text: str) -> Optional[str]:
        return self.spoken_forms().get(_normalise(text))

    def logit_filter(self, tokenizer: Tokenizer, sample_begin: int) -> LogitFilter:
        return TrieFilter(_token_trie(tokenizer, self.spoken_forms()), tokenizer.eot, sample_begin)


Grammar = Union[Digits, Choices]
YES_NO = Choices(("yes", "no"), synonyms={"yeah": "yes", "yep": "yes", "correct": "yes", "nope": "no"})


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


def _normalise(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s']", " ", text.lower()).split())


class DigitsFilter(LogitFilter):
    """Only tokens made of the grammar's symbols (and one leading space) until max_digits; EOT
    once min_digits are there."""

    def __init__(self, grammar: Digits, tokenizer: Tokenizer, sample_begin: int) -> None:
        self.grammar, self.eot, self.sample_begin = grammar, tokenizer.eot, sample_begin
        self.tokenizer = tokenizer
        self.symbol_counts = _symbol_counts(tokenizer, grammar.symbols)  # (vocab,), -1: not allowed

    def apply(self, logits: Tensor, tokens: Tensor) -> None:
        counts = self.symbol_counts.to(logits.device)
        for row in range(tokens.shape[0]):
            so_far = self._count(tokens[row, self.sample_begin :].tolist())
            allowed = (counts >= 0) & (counts + so_far <= self.grammar.max_digits)
            allowed[self.eot] = so_far >= self.grammar.min_digits
            allowed = allowed[: logits.shape[-1]]
            logits[row, ~allowed] = NEG_INF

    def _count(self, sampled: List[int]) -> int:
        return int(sum(int(self.symbol_counts[t]) for t in sampled if t < self.eot))


def _symbol_counts(tokenizer: Tokenizer, symbols: str) -> Tensor:
    counts = torch.full((tokenizer.encoding.n_vocab,), -1, dtype=torch.int32)
    pattern = re.compile(f" ?[{re.escape(symbols)}]+")
    for token in range(tokenizer.eot):
        text = tokenizer.decode([token])
        if pattern.fullmatch(text):
            counts[token] = len(text.strip())
    return counts


@dataclass
class _Node:
    children: Dict[int, "_Node"] = field(default_factory=dict)
    terminal: bool = False


def _token_trie(tokenizer: Tokenizer, forms: Dict[str, str]) -> _Node:
    """Every way the decoder writes a form: leading space, lower or capitalised, with or without
    a full stop, as the tokenizer encodes each."""
    root = _Node()
    for form in forms:
        for cased in {form, form.capitalize(), form.title()}:
            for ending in ("", ".", "!", "?"):
                node = root
                for token in tokenizer.encode(" " + cased + ending):
                    node = node.children.setdefault(token, _Node())
                node.terminal = True
    return root


class TrieFilter(LogitFilter):
    def __init__(self, root: _Node, eot: int, sample_begin: int) -> None:
        self.root, self.eot, self.sample_begin = root, eot, sample_begin

    def apply(self, logits: Tensor, tokens: Tensor) -> None:
        for row in range(tokens.shape[0]):
            node = self._walk(tokens[row, self.sample_begin :].tolist())
            allowed = list(node.children) + ([self.eot] if node.terminal or not node.children else [])
            keep = logits[row, allowed].clone()
            logits[row] = NEG_INF
            logits[row, allowed] = keep

    def _walk(self, sampled: Sequence[int]) -> _Node:
        node = self.root
        for token in sampled:
            if token >= self.eot:
                break
            node = node.children.get(token, _Node())
        return node
