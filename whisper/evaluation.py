"""Word error rate over a corpus, on Whisper's English text normalisation."""
from __future__ import annotations

import functools
from typing import Callable, List, Sequence


@functools.lru_cache(maxsize=1)
def _english_normalizer() -> Callable[[str], str]:
    try:
        from whisper_normalizer.english import EnglishTextNormalizer
    except ImportError as exc:
        raise ImportError(
            "normalize_english needs the whisper-normalizer package: pip install whisper-normalizer==0.1.15"
        ) from exc
    return EnglishTextNormalizer()


def normalize_english(text: str) -> str:
    """Whisper's English normaliser: lower case, no punctuation, spelled-out numbers as digits, US spelling."""
    return _english_normalizer()(text)


def word_edit_distance(reference: Sequence[str], hypothesis: Sequence[str]) -> int:
    """Fewest word substitutions, deletions and insertions turning ``reference`` into ``hypothesis``."""
    previous = list(range(len(hypothesis) + 1))
    for i, ref_word in enumerate(reference, start=1):
        current = [i]
        for j, hyp_word in enumerate(hypothesis, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ref_word != hyp_word)))
        previous = current
    return previous[-1]


def word_error_rate(references: Sequence[str], hypotheses: Sequence[str]) -> float:
    """Corpus WER: total word edits over total reference words (texts are split on whitespace as given)."""
    if len(references) != len(hypotheses):
        raise ValueError(f"{len(references)} references but {len(hypotheses)} hypotheses")
    reference_words: List[List[str]] = [r.split() for r in references]
    n_words = sum(len(words) for words in reference_words)
    if n_words == 0:
        raise ValueError("the references hold no words")
    edits = sum(word_edit_distance(r, h.split()) for r, h in zip(reference_words, hypotheses))
    return edits / n_words


def english_wer(references: Sequence[str], hypotheses: Sequence[str]) -> float:
    """Corpus WER after Whisper's English normalisation of both sides (how the benchmarks score)."""
    return word_error_rate([normalize_english(r) for r in references], [normalize_english(h) for h in hypotheses])
