"""The logit filters behind whisper.grammar: at each decoding step only the tokens that can continue
a valid answer keep their logits, and end-of-text only once the answer is complete."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Dict, List, Sequence, Tuple

import torch
from torch import Tensor

from .decoding import LogitFilter
from .grammar import Digits
from .tokenizer import Tokenizer

NEG_INF = float("-inf")


class DigitsFilter(LogitFilter):
    """Only tokens made of the grammar's symbols (and one leading space), up to max_digits, and a
    comma, full stop or hyphen between them: Whisper writes digits read with pauses as "8, 8, 5",
    and without its separators it skipped repeated digits (8857759 read over 9 s came out as
    857759). End of text stays allowed: forcing min_digits would make the model invent digits
    the caller did not say; ``Digits.answer`` refuses a string that is too short instead."""

    def __init__(self, grammar: Digits, tokenizer: Tokenizer, sample_begin: int) -> None:
        self.grammar, self.eot, self.sample_begin = grammar, tokenizer.eot, sample_begin
        self.tokenizer = tokenizer
        self.symbol_counts = _symbol_counts(tokenizer, grammar.symbols)  # (vocab,), -1: not allowed

    def apply(self, logits: Tensor, tokens: Tensor) -> None:
        counts = self.symbol_counts.to(logits.device)
        for row in range(tokens.shape[0]):
            sampled = tokens[row, self.sample_begin :].tolist()
            so_far = self._count(sampled)
            allowed = (counts >= 0) & (counts + so_far <= self.grammar.max_digits)
            if so_far == 0 or int(self.symbol_counts[sampled[-1]]) == 0:
                allowed &= counts != 0  # a separator only after a digit
            allowed[self.eot] = so_far > 0
            allowed = allowed[: logits.shape[-1]]
            logits[row, ~allowed] = NEG_INF

    def candidates(self) -> List[int]:
        return (self.symbol_counts >= 0).nonzero().squeeze(1).tolist() + [self.eot]

    def _count(self, sampled: List[int]) -> int:
        return int(sum(max(0, int(self.symbol_counts[t])) for t in sampled if t < self.eot))


_SYMBOL_COUNTS: Dict[Tuple[str, str], Tensor] = {}


def _symbol_counts(tokenizer: Tokenizer, symbols: str) -> Tensor:
    """Per token, how many of ``symbols`` it writes (0: a separator, -1: something else).
    Decoding the whole vocabulary takes ~60 ms, so it is done once per vocabulary, not per decode."""
    key = (tokenizer.encoding.name, symbols)
    if key not in _SYMBOL_COUNTS:
        counts = torch.full((tokenizer.encoding.n_vocab,), -1, dtype=torch.int32)
        pattern = re.compile(f" ?[{re.escape(symbols)}]+")
        separator = re.compile(r" ?[,.\-]")
        for token in range(tokenizer.eot):
            try:
                text = tokenizer.decode([token])
            except KeyError:  # an id the vocabulary leaves unused (50256 in the multilingual one)
                continue
            if pattern.fullmatch(text):
                counts[token] = len(text.strip())
            elif separator.fullmatch(text):
                counts[token] = 0
        _SYMBOL_COUNTS[key] = counts
    return _SYMBOL_COUNTS[key]


@dataclass
class _Node:
    children: Dict[int, "_Node"] = field(default_factory=dict)
    terminal: bool = False


def token_trie(tokenizer: Tokenizer, forms: Dict[str, str]) -> _Node:
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

    def candidates(self) -> List[int]:
        found, nodes = {self.eot}, [self.root]
        while nodes:
            node = nodes.pop()
            found.update(node.children)
            nodes.extend(node.children.values())
        return sorted(found)

    def _walk(self, sampled: Sequence[int]) -> _Node:
        node = self.root
        for token in sampled:
            if token >= self.eot:
                break
            node = node.children.get(token, _Node())
        return node
