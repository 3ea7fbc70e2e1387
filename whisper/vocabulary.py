"""Custom vocabulary (hotword biasing): a call's own words (product names, surnames, streets),
boosted while they are decoded.

A ``Vocabulary`` is a frozen list of phrases (pure Python: the bridge parses it without torch).
Its logit filter walks a trie of the tokens of every phrase (with and without a leading space, as
written and capitalised): at each step, every token that starts a phrase or continues the part of
one just written gets ``bonus_logit`` added to its logit. The bound on what it can invent: a token
gets the bonus only if its log-probability is already within ``margin`` of the best token's, so
the boost picks between spellings the model itself finds close ("Zorblax" over "Sorblax"), never
puts a phrase where the audio says something unlike it.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Dict, List, Sequence, Tuple

if TYPE_CHECKING:
    from torch import Tensor

    from .tokenizer import Tokenizer

MAX_PHRASES = 100
MAX_PHRASE_CHARS = 60


@dataclass(frozen=True)
class Vocabulary:
    phrases: Tuple[str, ...]
    bonus_logit: float = 4.0  # added to a token that starts or continues a phrase ...
    margin: float = 6.0  # ... whose log-probability is within this of the best token's

    def __post_init__(self) -> None:
        if not self.phrases or any(not p.strip() for p in self.phrases):
            raise ValueError("a vocabulary needs at least one non-empty phrase")
        if len(self.phrases) > MAX_PHRASES:
            raise ValueError(f"a vocabulary has at most {MAX_PHRASES} phrases, not {len(self.phrases)}")
        too_long = next((p for p in self.phrases if len(p) > MAX_PHRASE_CHARS), None)
        if too_long is not None:
            raise ValueError(f"vocabulary phrases have at most {MAX_PHRASE_CHARS} characters: {too_long[:20]!r}...")
        if self.bonus_logit < 0 or self.margin < 0:
            raise ValueError("vocabulary bonus and margin must not be negative")

    def logit_filter(self, tokenizer: "Tokenizer", sample_begin: int) -> "VocabularyBias":
        return VocabularyBias(self, tokenizer, sample_begin)


@functools.lru_cache(maxsize=256)  # the bridge and the engine read a call's spec per utterance
def parse_vocabulary(spec: str) -> Vocabulary:
    """The dialplan's and the command line's form: phrases separated by ``|`` (no commas: they split
    dialplan arguments), e.g. ``Zorblax|Quentara Pro|Mrs Okonkwo``."""
    phrases = tuple(" ".join(p.split()) for p in spec.split("|") if p.strip())
    return Vocabulary(phrases)


@dataclass
class _Node:
    children: Dict[int, "_Node"] = field(default_factory=dict)


_TRIES: Dict[Tuple[str, Tuple[str, ...], bool], _Node] = {}


def _trie(tokenizer: "Tokenizer", phrases: Sequence[str], spaced: bool) -> _Node:
    """Every way the decoder writes a phrase after a space (``spaced``) or without one (at the start
    of the text, after a hyphen or a quote): as written, or capitalised (a sentence's start)."""
    key = (tokenizer.encoding.name, tuple(phrases), spaced)
    if key not in _TRIES:
        root = _Node()
        for phrase in phrases:
            for cased in {phrase, phrase[:1].upper() + phrase[1:]}:
                node = root
                for token in tokenizer.encode(" " + cased if spaced else cased):
                    node = node.children.setdefault(token, _Node())
        if len(_TRIES) > 256:
            _TRIES.clear()
        _TRIES[key] = root
    return _TRIES[key]


class VocabularyBias:
    """A ``decoding.LogitFilter`` (not a subclass: decoding.py builds it, and this module must not
    import it) that adds a bounded bonus to the tokens that start or continue a phrase."""

    def __init__(self, vocabulary: Vocabulary, tokenizer: "Tokenizer", sample_begin: int) -> None:
        self.vocabulary, self.tokenizer, self.sample_begin = vocabulary, tokenizer, sample_begin
        self.spaced = _trie(tokenizer, vocabulary.phrases, spaced=True)
        self.bare = _trie(tokenizer, vocabulary.phrases, spaced=False)
        self.depth = max(_depth(self.spaced), _depth(self.bare))

    def apply(self, logits: "Tensor", tokens: "Tensor") -> None:
        import torch

        best = logits.max(dim=-1).values  # a log-probability's distance to the best is its logit's
        for row in range(tokens.shape[0]):
            sampled = tokens[row, self.sample_begin :].tolist()
            if sampled and sampled[-1] >= self.tokenizer.eot:
                continue
            index = torch.tensor(self.continuations(sampled), dtype=torch.long, device=logits.device)
            close = index[logits[row, index] >= best[row] - self.vocabulary.margin]
            logits[row, close] += self.vocabulary.bonus_logit

    def candidates(self) -> None:
        return None

    def continuations(self, sampled: Sequence[int]) -> List[int]:
        """Tokens that start a phrase, or continue one whose start ends ``sampled``."""
        found = set(self.spaced.children)
        if not sampled or not self.tokenizer.decode(sampled[-1:])[-1:].isalnum():
            found.update(self.bare.children)
        for start in range(max(0, len(sampled) - self.depth), len(sampled)):
            for root in (self.spaced, self.bare):
                node = _walk(root, sampled[start:])
                if node is not None:
                    found.update(node.children)
        return sorted(t for t in found if t < self.tokenizer.eot)


def _walk(node: _Node, tokens: Sequence[int]):
    for token in tokens:
        node = node.children.get(token)
        if node is None:
            return None
    return node


def _depth(node: _Node) -> int:
    return 1 + max((_depth(child) for child in node.children.values()), default=0) if node.children else 0
