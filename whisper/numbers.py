"""How digits are written: spoken digits that read as a number are written in numerals.

Whisper writes a digit string as numerals ("4, 7, 1, 1.") but a lone digit often as a word
("Three", "Four.", Italian "Quattro!"): a caller who reads a number with pauses gets a mix. IVR
code compares numerals, so every utterance whose words are all digits of its language becomes
numerals ("Three" -> "3", "Otto, sei." -> "8, 6."), and so are three digit words or more in a row
amid other words, one other word between two of them allowed ("Четыре. Один. Девять. Тять. Два."
-> "4. 1. 9. Тять. 2.": one misheard digit does not leave the rest of the number in words). Other
digit words are left as they are ("one of them", "Oh.", "cuatro o seis"). Languages without a
table here are left as written. Pure; used on partials and finals alike.

An utterance that is clearly a string of digits (every word a digit, ``MIN_STRING_DIGITS`` of them
or more, or digits in more than one number) is a number read aloud, not arithmetic: Whisper writes
such digits read with pauses as decimals and a spoken "oh" as "or" ("886.5 or 0.380." for
8 8 6 5 oh 0 3 8 0). There a "." between two digits is a pause ("886 5 0 0 380."), and a word that
sounds like zero between two digits ("or", "o" in English) is the digit 0.
"""
from __future__ import annotations

import re
from typing import Dict, FrozenSet, List, Match, Sequence, Tuple

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
# Words Whisper writes for a spoken zero ("oh") between two digits of a digit string.
_ZERO_SOUNDS: Dict[str, FrozenSet[str]] = {"en": frozenset({"or", "o", "owe"})}
# Digits (numerals and digit words) that make an utterance of digits alone clearly a digit string,
# where its zero sounds are zeros: a phone number's 7; "100 or 200" (6) stays a choice.
MIN_STRING_DIGITS = 7
_DECIMAL_POINT = re.compile(r"(?<=\d)\.(?=\d)")
_TOKEN = re.compile(r"[^\W_]+")  # a word or a numeral
# Digit words that read as a number amid other words: this many in a row, or with one other word
# between two of them (a digit the model misheard: "Четыре. Один. Девять. Тять. Четыре." is 4 1 9 ? 4).
# Fewer are left as words ("one or two", "two, three days").
MIN_DIGIT_RUN = 3


def _numeral_spans(text: str, language: str) -> List[Tuple[int, int, str]]:
    """(start, end, numeral) of each digit word in ``text`` to write as a numeral (and of each
    decimal point or zero sound of a digit string, see ``_digit_string_spans``)."""
    words_to_digits = DIGIT_WORDS.get(language, {})
    tokens = list(_TOKEN.finditer(text))
    is_digit = [t.group().isdigit() or t.group().lower() in words_to_digits for t in tokens]
    string_spans = _digit_string_spans(text, tokens, is_digit, language)
    if string_spans:
        is_digit = [True] * len(tokens)
    runs: List[List[Match[str]]] = [[]]
    for i, token in enumerate(tokens):
        misheard = 0 < i < len(tokens) - 1 and is_digit[i - 1] and is_digit[i + 1]
        if is_digit[i]:
            runs[-1].append(token)
        elif runs[-1] and not misheard:
            runs.append([])
    spans = []
    for run in runs:
        if (all(is_digit) or len(run) >= MIN_DIGIT_RUN) and not _only_exclamations(run, language):
            spans += [(t.start(), t.end(), words_to_digits.get(t.group().lower(), "0"))
                      for t in run if not t.group().isdigit()]
    return sorted(spans + [s for s in string_spans if s[2] == " "])


def _digit_string_spans(text: str, tokens: List[Match[str]], is_digit: List[bool], language: str
                        ) -> List[Tuple[int, int, str]]:  # fmt: skip
    """For an utterance that is clearly a digit string, its decimal points as pauses (" ") and its
    zero sounds between digits as "0"; nothing for any other text."""
    zero_sounds = _ZERO_SOUNDS.get(language, frozenset())
    is_zero = [not is_digit[i] and 0 < i < len(tokens) - 1 and is_digit[i - 1] and is_digit[i + 1]
               and t.group().lower() in zero_sounds for i, t in enumerate(tokens)]  # fmt: skip
    if not tokens or not all(d or z for d, z in zip(is_digit, is_zero)) or re.search(r"[^\w\s.,;:!?-]", text):
        return []
    digits = sum(len(t.group()) if t.group().isdigit() else 1 for t, d in zip(tokens, is_digit) if d)
    numbers = len([t for t, d in zip(tokens, is_digit) if d])
    points = [(m.start(), m.end(), " ") for m in _DECIMAL_POINT.finditer(text)]
    if digits < MIN_STRING_DIGITS and not (points and numbers > 2):
        return []
    return points + [(t.start(), t.end(), "0") for t, z in zip(tokens, is_zero) if z]


def _only_exclamations(run: List[Match[str]], language: str) -> bool:
    return all(t.group().lower() in _NOT_ALONE.get(language, ()) for t in run)


def digits_as_numerals(text: str, language: str = "en") -> str:
    """``text`` with its digit words in numerals where they read as a number: all its words are
    digits, or at least ``MIN_DIGIT_RUN`` of them come in a row (one other word between two of them
    allowed)."""
    return "".join(pieces_as_numerals([text], language))


def pieces_as_numerals(pieces: Sequence[str], language: str = "en") -> List[str]:
    """``digits_as_numerals`` of the text the pieces (an utterance's timed words) make together,
    given back piece by piece, so that words and text agree."""
    text = "".join(pieces)
    spans = _numeral_spans(text, language)
    written, offset = [], 0
    for piece in pieces:
        end = offset + len(piece)
        inside = [s for s in spans if offset <= s[0] and s[1] <= end]
        out, last = [], offset
        for start, stop, numeral in inside:
            out += [text[last:start], numeral]
            last = stop
        written.append("".join(out) + text[last:end])
        offset = end
    return written


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
    return _TOKEN.sub(lambda match: words_to_digits.get(match.group(0).lower(), match.group(0)), text)
