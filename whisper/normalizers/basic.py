"""Language-independent transcript normalisation for scoring: case, brackets, symbols and spacing."""
from __future__ import annotations

import re
import unicodedata

import regex

# Letters that Unicode does not decompose into a base letter plus a mark.
_UNDECOMPOSED = {"œ": "oe", "Œ": "OE", "ø": "o", "Ø": "O", "æ": "ae", "Æ": "AE", "ß": "ss", "ẞ": "SS",
                 "đ": "d", "Đ": "D", "ð": "d", "Ð": "D", "þ": "th", "Þ": "th", "ł": "l", "Ł": "L"}  # fmt: skip

BRACKETED = re.compile(r"[<\[][^>\]]*[>\]]|\([^)]+?\)")  # [noise], <unk>, (laughs)


def remove_symbols_and_diacritics(text: str, keep: str = "") -> str:
    """Replace marks, symbols and punctuation with a space and strip accents (é -> e, ø -> o)."""
    out = []
    for char in unicodedata.normalize("NFKD", text):
        if char in keep:
            out.append(char)
        elif char in _UNDECOMPOSED:
            out.append(_UNDECOMPOSED[char])
        elif unicodedata.category(char) == "Mn":
            continue  # the accent of a decomposed letter
        elif unicodedata.category(char)[0] in "MSP":
            out.append(" ")
        else:
            out.append(char)
    return "".join(out)


def remove_symbols(text: str) -> str:
    """Replace marks, symbols and punctuation with a space, keeping accented letters whole."""
    return "".join(" " if unicodedata.category(c)[0] in "MSP" else c for c in unicodedata.normalize("NFKC", text))


class BasicTextNormalizer:
    """Lower case, no bracketed annotations, symbols and punctuation as spaces, single spaces.

    ``remove_diacritics`` also strips accents; ``split_letters`` puts a space between graphemes
    (for scripts written without spaces, scored per character).
    """

    def __init__(self, remove_diacritics: bool = False, split_letters: bool = False):
        self.clean = remove_symbols_and_diacritics if remove_diacritics else remove_symbols
        self.split_letters = split_letters

    def __call__(self, text: str) -> str:
        text = BRACKETED.sub(" ", text.lower())
        text = self.clean(text).lower()
        if self.split_letters:
            text = " ".join(regex.findall(r"\X", text, regex.U))
        return re.sub(r"\s+", " ", text).strip()
