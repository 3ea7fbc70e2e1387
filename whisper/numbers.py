"""How digits are written: an utterance made only of spoken digits is written in numerals.

Whisper writes a digit string as numerals ("4, 7, 1, 1.") but a lone digit often as a word
("Three", "Four.", Italian "Quattro!"): a caller who reads a number with pauses gets a mix. IVR
code compares numerals, so every utterance whose words are all digits of its language becomes
numerals ("Three" -> "3", "Otto, sei." -> "8, 6."); text with other words is left as it is ("one
of them", "Oh.", "cuatro o seis"). Languages without a table here are left as written. Pure; used
on partials and finals alike.
"""
from __future__ import annotations

import re
from typing import Dict, FrozenSet

_TABLES = {  # the words for 0 to 9 (several for one digit where a language has them)
    "en": "zero|oh one two three four five six seven eight nine",
    "es": "cero uno dos tres cuatro cinco seis siete ocho nueve",
    "fr": "zéro|zero un|une deux trois quatre cinq six sept huit neuf",
    "it": "zero uno due tre quattro cinque sei sette otto nove",
    "de": "null eins zwei|zwo drei vier fünf sechs sieben acht neun",
    "pt": "zero um|uma dois|duas três|tres quatro cinco seis|meia sete oito nove",
    "ru": "ноль|нуль один|одна два|две три четыре пять шесть семь восемь девять",
}
DIGIT_WORDS: Dict[str, Dict[str, str]] = {
    language: {word: str(digit) for digit, words in enumerate(table.split()) for word in words.split("|")}
    for language, table in _TABLES.items()
}
_NOT_ALONE: Dict[str, FrozenSet[str]] = {"en": frozenset({"oh"})}  # alone, an exclamation ("Oh.")
_WORD = re.compile(r"[^\W\d_]+")


def digits_as_numerals(text: str, language: str = "en") -> str:
    words_to_digits = DIGIT_WORDS.get(language, {})
    words = [w.lower() for w in _WORD.findall(text)]
    if not words or any(w not in words_to_digits for w in words):
        return text
    if len(set(words)) == 1 and words[0] in _NOT_ALONE.get(language, ()) and not re.search(r"\d", text):
        return text
    return _WORD.sub(lambda match: words_to_digits[match.group(0).lower()], text)


def is_digit_string(text: str, language: str = "en") -> bool:
    """Only digits (numerals or digit words) and punctuation: "4, 7, 1.", "Three", not "Oh." alone."""
    written = digits_as_numerals(text, language)
    return bool(re.search(r"\d", written)) and not re.search(r"[^\d\s.,;:!?¡¿-]", written)


def is_digit_word(word: str, language: str = "en") -> bool:
    """A numeral ("0", "4711") or one of the language's digit words, lower-cased ("ocho")."""
    return word.isdigit() or word in DIGIT_WORDS.get(language, {})


def numerals_everywhere(text: str, language: str) -> str:
    """Every digit word as its numeral, whatever surrounds it: for scoring transcripts against
    references that write numbers either way ("marque uno", "marque 1"), on both sides alike."""
    words_to_digits = DIGIT_WORDS.get(language, {})
    return _WORD.sub(lambda match: words_to_digits.get(match.group(0).lower(), match.group(0)), text)
