"""LocalAgreement-2: finals before the speaker stops, from the words two consecutive partials agree on.

A pure policy over one utterance's partials: it remembers the previous partial's words and says
which leading words of the next one may be committed (become a final) and where that final ends.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, List, Optional, Protocol, Sequence, Tuple


@dataclass(frozen=True)
class AgreementOptions:
    # Utterances at least this long are committed in parts (5.0 is LocalAgreement's usual); None,
    # the default, commits nothing, and a final waits for the end of its utterance or the 12 s cut.
    # Even at whole sentences, the rest of a commit, decoded apart from what came before, cost WER
    # with partials on (25 prompts, base: es 27.6 -> 30.7 %, fr 22.7 -> 24.0 %; offline 27.9, 20.2).
    commit_after_s: Optional[float] = None
    commit_margin_s: float = 1.0  # committed words end at least this long before the audio so far
    commit_min_words: int = 3


class TimedWord(Protocol):
    """A word with its times in seconds from the utterance's start (timing.WordTiming)."""

    word: str
    tokens: List[int]
    start: float
    end: float


@dataclass(frozen=True)
class Commit:
    """The leading words of an open utterance that become a final; the rest stays open."""

    words: Tuple[TimedWord, ...]

    @property
    def end_s(self) -> float:
        """Where the final ends, in seconds from the utterance's start."""
        return self.words[-1].end

    @property
    def text(self) -> str:
        return "".join(w.word for w in self.words).strip()

    @property
    def tokens(self) -> List[int]:
        return [token for w in self.words for token in w.tokens]


_SENTENCE_ENDS = (".", "!", "?", "。", "！", "？", "…")


def _may_end(word: str, next_word: Optional[str], is_digit: Callable[[str], bool]) -> bool:
    """Whether a commit may end with ``word``, ``next_word`` (None: none) the first word it leaves:
    at a sentence end, and not between two digits ("My number is 5 5 5. | 1 2 3 4")."""
    between_digits = next_word is not None and is_digit(_normalise(word)) and is_digit(_normalise(next_word))
    return word.rstrip().endswith(_SENTENCE_ENDS) and not between_digits


def _normalise(word: str) -> str:
    return "".join(ch for ch in word.lower() if ch.isalnum())


class LocalAgreement:
    """One stream's open utterance: its previous partial, and where the next partial may commit."""

    def __init__(self, options: AgreementOptions = AgreementOptions()):
        self.options = options
        self._previous_words: List[str] = []

    def restart(self) -> None:
        """A new utterance opens (or the rest of a committed one): nothing to agree with yet."""
        self._previous_words = []

    def commit_point(self, text: str, duration_s: float, timings: Callable[[], Sequence[TimedWord]],
                     is_digit: Callable[[str], bool] = lambda word: False) -> Optional[Commit]:  # fmt: skip
        """Take in a partial of ``duration_s`` of audio; what of it to commit, or None.

        ``timings`` gives the partial's word times; it is called only when a commit is possible
        (aligning words costs a model pass). A commit ends a sentence, so that the rest starts one
        and is decoded with whole sentences as its prompt, as transcribe() decodes a window after
        the one before: committed mid-sentence, the rest of "Pour écouter vos messages, appuyez sur
        | un. Vous pouvez ..." came out "10.". Nor does it end between two digits (``is_digit`` of
        a lower-cased word without punctuation, "4, 6, 9, 2. | 7, 3, 1.").
        """
        options = self.options
        if options.commit_after_s is None:
            return None
        agreed = self._agree(text.split())
        if duration_s < options.commit_after_s or agreed < options.commit_min_words:
            return None
        spoken = [t for t in timings() if t.word.strip()]
        committed = [t for t in spoken[:agreed] if t.end <= duration_s - options.commit_margin_s]
        while committed and not _may_end(committed[-1].word, spoken[len(committed)].word
                                         if len(committed) < len(spoken) else None, is_digit):  # fmt: skip
            committed.pop()
        if len(committed) < options.commit_min_words:
            return None
        return Commit(tuple(committed))

    def _agree(self, words: List[str]) -> int:
        """How many leading words ``words`` shares with the previous partial, which it replaces."""
        previous, self._previous_words = self._previous_words, words
        count = 0
        for old, new in zip(previous, words):
            if _normalise(old) != _normalise(new):
                break
            count += 1
        return count
