"""Spoken English numbers as digits: "nineteen ninety nine" -> "1999", "two point five million
dollars" -> "$2500000", "double oh seven" -> "007", "thirty first" -> "31st".

Words are read left to right into one number at a time. Within a number, a word either adds to
the group being built ("forty" + "three", "two hundred" + "sixty") or, where English would not
say them together as one quantity ("nineteen" "ninety", "nine" "one" "one"), closes that group
and starts another, and the groups' digits are written one after the other.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal
from typing import List, Optional, Sequence

_ONES = "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen " \
        "sixteen seventeen eighteen nineteen".split()  # fmt: skip
ONES = {word: n for n, word in enumerate(_ONES)}
TENS = {word: 10 * n for n, word in enumerate("twenty thirty forty fifty sixty seventy eighty ninety".split(), 2)}
SCALES = {"thousand": 10**3, "million": 10**6, "billion": 10**9, "trillion": 10**12, "quadrillion": 10**15}
ZEROS = {"oh", "o"}  # zero only among digits: "two o eight", "double oh seven"
ORDINALS = {
    "first": "one", "second": "two", "third": "three", "fifth": "five", "eighth": "eight", "ninth": "nine",
    "twelfth": "twelve", **{f"{w}th": w for w in ("four six seven ten eleven thirteen fourteen fifteen sixteen "
                                                 "seventeen eighteen nineteen hundred").split()},
    **{f"{w[:-1]}ieth": w for w in TENS}, **{f"{w}th": w for w in SCALES},
}  # fmt: skip
PLURALS = {**{f"{w[:-1]}ies": w for w in TENS}, **{f"{w}s": w for w in SCALES}, "hundreds": "hundred"}
SIGNS = {"minus": "-", "negative": "-", "plus": "+", "positive": "+"}
CURRENCIES = {"dollar": "$", "dollars": "$", "euro": "€", "euros": "€", "pound": "£", "pounds": "£",
              "cent": "¢", "cents": "¢"}  # fmt: skip
REPEATS = {"double": 2, "triple": 3}
LITERAL = re.compile(r"([$€£¢]?)(\d+(?:\.\d+)?)(st|nd|rd|th|s|%)?")


def ordinal_suffix(value: str) -> str:
    n = int(value.split(".")[0] or 0)
    if n % 100 in (11, 12, 13):
        return "th"
    return {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")


@dataclass
class _Number:
    prefix: str = ""  # sign, then currency
    head: str = ""  # digits of the groups already closed
    total: Decimal = Decimal(0)  # thousands, millions ... of the open group
    group: Optional[Decimal] = None  # the open group below a thousand (None: no group open)
    decimals: Optional[str] = None  # digits after "point"
    last: str = ""  # what the last word was: digit, teen, tens, hundred, scale, literal, point
    suffix: str = ""

    def close_group(self) -> None:
        if self.group is not None or self.total:
            self.head += _digits(self.total + self._group_value())
        self.total, self.group, self.decimals = Decimal(0), None, None

    def _group_value(self) -> Decimal:
        group = self.group or Decimal(0)
        if self.decimals:
            group += Decimal(f"0.{self.decimals}")
        return group

    def text(self) -> str:
        value = self.head
        if self.group is not None or self.total or not value:
            value += _digits(self.total + self._group_value())
        if self.suffix == "ordinal":
            self.suffix = ordinal_suffix(value)
        return self.prefix + value + self.suffix


def _digits(value: Decimal) -> str:
    return str(int(value)) if value == value.to_integral_value() else format(value, "f")


class EnglishNumberNormalizer:
    """Rewrites spoken numbers in lower-case English text as digits, with their currency, sign,
    percent, ordinal or plural suffix."""

    def __call__(self, text: str) -> str:
        text = re.sub(r"\bper cent\b", "percent", text)
        text = re.sub(r"([a-z])(?=\d)|(\d)(?=[a-z])", r"\1\2 ", text)  # b747 -> b 747, 10km -> 10 km
        text = re.sub(r"(\d) (st|nd|rd|th|s|%)\b|(\d) (%)", r"\1\3\2\4", text)  # 10 th -> 10th
        words = _Reader(text.split()).read()
        text = " ".join(words)
        text = re.sub(r"([$€£])(\d+) and ¢(\d\d?)\b", lambda m: f"{m[1]}{m[2]}.{int(m[3]):02d}", text)
        return re.sub(r"\$0\.(\d\d?)\b", lambda m: f"¢{int(m[1].ljust(2, '0'))}", text)


class _Reader:
    def __init__(self, words: Sequence[str]):
        self.words, self.at, self.out = list(words), 0, []
        self.number: Optional[_Number] = None

    def peek(self, ahead: int = 1) -> str:
        index = self.at + ahead
        return self.words[index] if index < len(self.words) else ""

    def read(self) -> List[str]:
        while self.at < len(self.words):
            word = self.words[self.at]
            if not self.take(word):
                self.finish()
                if not self.start(word):
                    self.out.append(word)
            self.at += 1
        self.finish()
        return self.out

    def finish(self) -> None:
        if self.number is not None:
            self.out.append(self.number.text())
            self.number = None

    def start(self, word: str) -> bool:
        """Begin a number at ``word`` if it is one's first word."""
        nxt = self.peek()
        if word in SIGNS and (_is_number_word(nxt) or LITERAL.fullmatch(nxt)):
            self.number = _Number(prefix=SIGNS[word])
            return True
        if word in ZEROS and not (nxt in ONES or nxt in ZEROS):
            return False
        if word in REPEATS and not _is_digit(nxt):
            return False
        if _is_number_word(word) or word in REPEATS or LITERAL.fullmatch(word):
            self.number = _Number()
            return self.take(word)
        return False

    def take(self, word: str) -> bool:
        """Add ``word`` to the open number; False if it is not part of it."""
        number = self.number
        if number is None:
            return False
        if word in ORDINALS or word in PLURALS:
            taken = self.take((ORDINALS.get(word) or PLURALS[word]))
            number.suffix = "ordinal" if word in ORDINALS else "s"
            self.finish()
            return taken
        if word in CURRENCIES and number.last not in ("", "point"):
            number.prefix += CURRENCIES[word]
            self.finish()
            return True
        if word == "percent" and number.last not in ("", "point"):
            number.suffix = "%"
            self.finish()
            return True
        return self.take_digits(word) or self.take_connective(word)

    def take_connective(self, word: str) -> bool:
        number, nxt = self.number, self.peek()
        if word == "point" and number.decimals is None and number.last != "point" and _is_digit_like(nxt):
            number.decimals, number.last = "", "point"
            return True
        if word == "and" and nxt == "a" and self.peek(2) == "half" and number.decimals is None:
            number.decimals, number.last = "5", "literal"
            self.at += 2
            return True
        return word == "and" and number.last in ("hundred", "scale") and _is_number_word(nxt)

    def take_digits(self, word: str) -> bool:
        number = self.number
        if number.last in ("point", "decimal"):
            digit = LITERAL.fullmatch(word)
            if digit and "." not in word and not digit[1] and not digit[3]:
                number.decimals, number.last = number.decimals + word, "decimal"
                return True
            if _is_digit(word):
                number.decimals, number.last = number.decimals + str(ONES.get(word, 0)), "decimal"
                return True
            if number.last == "point":
                return False
        if word in REPEATS and _is_digit(self.peek()):
            self.at += 1
            number.close_group()
            number.head += str(ONES.get(self.words[self.at], 0)) * REPEATS[word]
            number.last = "digit"
            return True
        return self.take_word(word) or self.take_literal(word)

    def take_word(self, word: str) -> bool:
        number = self.number
        joins = number.last in ("hundred", "scale")
        if word in ZEROS or word == "zero":
            if number.last not in ("digit", "teen", "tens") and word != "zero" and number.last != "":
                return False
            number.close_group()
            number.head += "0"
            number.last = "digit"
            return True
        if word in ONES:
            value = ONES[word]
            if not (joins or (number.last == "tens" and value < 10)):
                number.close_group()
            number.group = (number.group or Decimal(0)) + value
            number.last = "digit" if value < 10 else "teen"
            return True
        if word in TENS:
            if not joins:
                number.close_group()
            number.group = (number.group or Decimal(0)) + TENS[word]
            number.last = "tens"
            return True
        return self.take_scale(word)

    def take_scale(self, word: str) -> bool:
        number = self.number
        if word == "hundred" and number.last != "scale" or word in SCALES:
            if number.head and number.group is None:
                number.group, number.head = Decimal(number.head), ""
            group = number._group_value() if number.group is not None else Decimal(1)
            number.decimals = None
            if word == "hundred":
                number.group, number.last = group * 100, "hundred"
            else:
                number.total, number.group, number.last = (number.total + group) * SCALES[word], None, "scale"
            return True
        return False

    def take_literal(self, word: str) -> bool:
        match = LITERAL.fullmatch(word)
        if match is None or self.number.last not in ("",):
            return False
        currency, digits, suffix = match.groups()
        self.number.prefix += currency
        self.number.group, self.number.last = Decimal(digits), "literal"
        if suffix:
            self.number.suffix = suffix
            self.finish()
        return True


def _is_number_word(word: str) -> bool:
    return word in ONES or word in TENS or word in SCALES or word == "hundred" or word in ORDINALS or word in PLURALS


def _is_digit(word: str) -> bool:
    return (word in ONES and ONES[word] < 10) or word in ZEROS or (len(word) == 1 and word.isdigit())


def _is_digit_like(word: str) -> bool:
    return _is_digit(word) or word.isdigit()
