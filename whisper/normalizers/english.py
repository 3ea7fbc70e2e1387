"""English transcript normalisation for word error rates: spoken numbers as digits, one spelling per
word, contractions and titles spelled out, no punctuation.

``EnglishTextNormalizer()(text)`` is the whole pipeline; ``EnglishNumberNormalizer`` and
``EnglishSpellingNormalizer`` are its two word-level stages.
"""
from __future__ import annotations

import functools
import json
import re
from pathlib import Path
from typing import Dict

from .basic import BRACKETED, remove_symbols_and_diacritics
from .numbers import EnglishNumberNormalizer

__all__ = ["EnglishNumberNormalizer", "EnglishSpellingNormalizer", "EnglishTextNormalizer"]

SPELLING_FILE = Path(__file__).with_name("english_spelling.json")

FILLERS = re.compile(r"\b(?:hmm+|mm+|mhm+|uh+|um+|ah+|er+m?)\b")

TITLES = {
    "mr": "mister", "mrs": "missus", "ms": "miss", "dr": "doctor", "prof": "professor", "assoc": "associate",
    "asst": "assistant", "jr": "junior", "sr": "senior", "st": "saint", "capt": "captain", "col": "colonel",
    "gen": "general", "lt": "lieutenant", "sgt": "sergeant", "gov": "governor", "sen": "senator",
    "rep": "representative", "rev": "reverend", "hon": "honorable", "pres": "president", "esq": "esquire",
}  # fmt: skip

# Applied in order: the specific forms before the general suffixes.
CONTRACTIONS = (
    (r"\bwon't\b", "will not"), (r"\bcan't\b", "can not"), (r"\bshan't\b", "shall not"),
    (r"\bain't\b", "is not"), (r"\blet's\b", "let us"), (r"\by'all\b", "you all"),
    (r"\bwanna\b", "want to"), (r"\bgonna\b", "going to"), (r"\bgotta\b", "got to"),
    (r"'d been\b", " had been"), (r"'d better\b", " had better"), (r"'s been\b", " has been"),
    (r"'s got\b", " has got"), (r"\b(he|she|it|that|there|here|what|who|where|when|how)'s\b", r"\1 is"),
    (r"n't\b", " not"), (r"'re\b", " are"), (r"'ve\b", " have"), (r"'ll\b", " will"), (r"'m\b", " am"),
    (r"'d\b", " would"),
)  # fmt: skip

_TITLE = re.compile(r"\b(" + "|".join(TITLES) + r")\b\.?")


class EnglishSpellingNormalizer:
    """British and variant spellings to one spelling per word (colour -> color, cancelation ->
    cancellation), from the map ``spelling_data`` builds out of the SCOWL word lists."""

    def __init__(self, mapping: Dict[str, str] | None = None):
        self.mapping = _spelling_map() if mapping is None else mapping

    def __call__(self, text: str) -> str:
        return " ".join(self.mapping.get(word, word) for word in text.split())


@functools.lru_cache(maxsize=1)
def _spelling_map() -> Dict[str, str]:
    return json.loads(SPELLING_FILE.read_text(encoding="utf-8"))


class EnglishTextNormalizer:
    """The normaliser Whisper's English results are scored with: lower case, no fillers or
    bracketed annotations, contractions and titles in full, numbers as digits, one spelling."""

    def __init__(self):
        self.numbers = EnglishNumberNormalizer()
        self.spelling = EnglishSpellingNormalizer()

    def __call__(self, text: str) -> str:
        text = text.lower().replace("’", "'").replace("‘", "'")
        text = FILLERS.sub("", BRACKETED.sub("", text))
        text = re.sub(r"\s+'", "'", text)
        for pattern, replacement in CONTRACTIONS:
            text = re.sub(pattern, replacement, text)
        text = _TITLE.sub(lambda m: TITLES[m.group(1)], text)
        text = re.sub(r"(\d),(\d)", r"\1\2", text)  # 1,000 -> 1000
        text = re.sub(r"\.(?!\d)", " ", text)  # a full stop, but not a decimal point
        text = remove_symbols_and_diacritics(text, keep=".%$¢€£+-")
        text = self.numbers(text)
        text = self.spelling(text)
        text = re.sub(r"[.$¢€£+-](?![0-9])|(?<![0-9])[%.]|(?<=\w)[-+]", " ", text)  # symbols not in a number
        return re.sub(r"\s+", " ", text).strip()
