"""How digits are written: an utterance made only of spoken digits is written in numerals.

Whisper writes a digit string as numerals ("4, 7, 1, 1.") but a lone digit often as a word
("Three", "Four."): a caller who reads a number with pauses gets a mix. IVR code compares
numerals, so every utterance whose words are all digits becomes numerals ("Three" -> "3"); text
with other words is left as it is ("one of them", "Oh."). Pure; used on partials and finals alike.
"""
from __future__ import annotations

import re

DIGIT_WORDS = {"zero": "0", "oh": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5",
               "six": "6", "seven": "7", "eight": "8", "nine": "9"}
_WORD = re.compile(r"[^\W\d_]+")


def digits_as_numerals(text: str) -> str:
    words = [w.lower() for w in _WORD.findall(text)]
    if not words or any(w not in DIGIT_WORDS for w in words):
        return text
    if all(w == "oh" for w in words) and not re.search(r"\d", text):
        return text  # "Oh." alone is an exclamation, not a zero
    return _WORD.sub(lambda match: DIGIT_WORDS[match.group(0).lower()], text)


def is_digit_string(text: str) -> bool:
    """Only digits (numerals or digit words) and punctuation: "4, 7, 1.", "Three", not "Oh." alone."""
    written = digits_as_numerals(text)
    return bool(re.search(r"\d", written)) and not re.search(r"[^\d\s.,;:!?-]", written)
