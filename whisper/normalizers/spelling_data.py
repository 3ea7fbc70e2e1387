"""Builds ``english_spelling.json``, the variant -> canonical spelling map of ``EnglishSpellingNormalizer``.

The source is SCOWL, the word lists behind Debian's ``wamerican``/``wbritish`` (Debian package
``scowl``, in /usr/share/dict/scowl). A spelling is canonical when it is in the common English or
the American lists; a word found only in the British, Canadian, Australian or variant lists maps to
the canonical word it becomes under one of the regular spelling differences below (colour -> color,
mobilisation -> mobilization, cancelation -> cancellation). Run ``python -m
whisper.normalizers.spelling_data`` to rebuild the file after changing the rules.
"""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Dict, Iterable, Iterator, Set

SCOWL_DIR = Path("/usr/share/dict/scowl")
MAX_SIZE = 70  # SCOWL's size levels: 10 (most common) .. 95 (rarest); above 70 are mostly obscure words
OUTPUT = Path(__file__).with_name("english_spelling.json")

# Regular spelling differences, each applied one occurrence at a time in both directions.
SWAPS = (
    ("ise", "ize"), ("isation", "ization"), ("yse", "yze"), ("our", "or"), ("tre", "ter"),
    ("ogue", "og"), ("ae", "e"), ("oe", "e"), ("ll", "l"), ("ence", "ense"), ("mme", "m"),
    ("eable", "able"), ("ement", "ment"), ("que", "k"), ("ium", "um"), ("eing", "ing"),
)  # fmt: skip
_INSIDE_ONLY = {"ae", "oe"}  # a final -ae/-oe is a Latin or Greek plural, not a spelling variant


def _words(prefixes: Iterable[str]) -> Set[str]:
    words: Set[str] = set()
    for prefix in prefixes:
        for path in SCOWL_DIR.glob(f"{prefix}-words.*"):
            if int(path.suffix[1:]) <= MAX_SIZE:
                text = path.read_bytes().decode("utf-8", errors="replace")
                words.update(w for w in text.split() if re.fullmatch(r"[a-z]+", w))
    return words


def _respellings(word: str) -> Iterator[str]:
    for a, b in SWAPS:
        for old, new in ((a, b), (b, a)):
            for match in re.finditer(f"(?={old})", word):
                start = match.start()
                if old in _INSIDE_ONLY and start + len(old) == len(word):
                    continue
                yield word[:start] + new + word[start + len(old):]


def build_map() -> Dict[str, str]:
    canonical = _words(["english", "american"])
    others = _words(["british", "british_z", "canadian", "australian", "variant_1", "variant_2", "variant_3",
                     "british_variant_1", "british_variant_2", "canadian_variant_1", "canadian_variant_2",
                     "australian_variant_1", "australian_variant_2"]) - canonical  # fmt: skip
    mapping = {}
    for word in sorted(others):
        targets = sorted({r for r in _respellings(word) if r in canonical})
        if len(targets) == 1:  # two candidates: ambiguous, leave the word as it is
            mapping[word] = targets[0]
    return mapping


def main() -> int:
    if not SCOWL_DIR.is_dir():
        print(f"{SCOWL_DIR} not found: apt-get install scowl", file=sys.stderr)
        return 1
    mapping = build_map()
    OUTPUT.write_text(json.dumps(mapping, indent=0, sort_keys=True) + "\n", encoding="utf-8")
    print(f"{len(mapping)} spellings -> {OUTPUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
