"""Redaction of transcripts before they leave the engine side (pure: no asyncio, no sockets).

Policies (per bridge `--redact`, per call `Redact`):
  off   nothing is replaced;
  pci   payment card numbers -> [card], also read in groups across several finals or as digit
        words ("four one one one"), and the security code / expiry that follow one -> [cvv],
        [expiry]; DTMF runs of 4 or more digits -> X;
  pii   pci, and e-mail addresses -> [email], digit strings of 9 or more (phone, account and
        ID numbers) -> [number], tokens mixing letters with 5 or more digits -> [id].

A card number is a run of 13 or more digits (ASR drops and mishears digits, so neither the length
nor the Luhn check of what it wrote is proof), except one after a word such as "order" or "phone"
that fails the Luhn check; or a run of 8 or more right after a word such as "card" or "visa". Words of a redacted span become one word
with the first one's start and the last one's end, so word timings stay consistent.

A final whose text ends in 4-12 digits may be the first groups of a card read in pieces: it is
held (at most `hold_s`, or until the next final or the call's end) and released with the next
final, redacted together. Partials never show a run of 4 or more digits ([number]): the final
decides. In an IVR call with a grammar nothing is held; every run of 4 or more digits is replaced,
and the clear text goes only to the channel (`channel_text`), the point of such an IVR.
"""
from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Optional, Sequence

from whisper.streaming.types import TranscriptEvent, Word

POLICIES = ("off", "pci", "pii")
DEFAULT_POLICY = "pci"
HOLD_S = 6.0  # longest wait for the next group of a card number read in pieces
AFTER_CARD_S = 30.0  # after a card number, 3-4 digit runs and dates are its code / expiry
CARD_MIN, CARD_MAX = 13, 19
CONTEXT_MIN = 8  # digits after a card word that are taken as (part of) a card number
CONTEXT_WORDS = 8  # how far before a run a card word counts
PARTIAL_MIN = 4
DTMF_RUN_MIN = 4

_DIGIT_WORDS = {
    "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5",
    "six": "6", "seven": "7", "eight": "8", "nine": "9",
    "cero": "0", "uno": "1", "dos": "2", "tres": "3", "cuatro": "4", "cinco": "5", "seis": "6",
    "siete": "7", "ocho": "8", "nueve": "9",
    "zéro": "0", "un": "1", "une": "1", "deux": "2", "trois": "3", "quatre": "4", "cinq": "5",
    "sept": "7", "huit": "8", "neuf": "9",
    "due": "2", "tre": "3", "quattro": "4", "cinque": "5", "sei": "6", "sette": "7",
    "otto": "8", "nove": "9",
    "ноль": "0", "нуль": "0", "один": "1", "два": "2", "три": "3", "четыре": "4", "пять": "5",
    "шесть": "6", "семь": "7", "восемь": "8", "девять": "9",
}
# words ASR writes for a digit said among others ("5 0 to 8": two), counted only after a digit
_HOMOPHONES = {"oh": "0", "to": "2", "too": "2", "for": "4", "ate": "8", "won": "1"}
_REPEAT = {"double": 2, "triple": 3}
_FILLERS = {"uh", "um", "er", "erm", "hmm", "ah", "eh"}
# a card word may be misheard around its core ("McCard", "cards", "Mastercard's")
_CARD_WORD = re.compile(r"(card|visa|master|amex|express|discover|credit|debit|^pan$|tarjeta|"
                        r"carte|carta|карт)")
_NOT_CARD_WORD = re.compile(r"^(order|reference|ref|tracking|confirmation|invoice|booking|"
                            r"ticket|case|phone|call|mobile|cell|extension|telephone|number's)$")
_CODE_WORD = re.compile(r"^(cvv|cvc|cv2|security|code|csc)$")
_EXPIRY_WORD = re.compile(r"^(expiry|expires|expiration|expire|valid|thru|through)$")
_MONTHS = re.compile(r"^(jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec)[a-z]*$")
_EDGE_PUNCT = "\"'()[]{}«»¿¡.,;:!?-–—/"
# "4111-1111", "4,539" (Whisper's thousands comma in a group read aloud), and "0.8" or "886.5"
# (digits misheard as a decimal): every digit of them counts, so a card cannot slip through as one
_DIGITS = re.compile(r"^\d+(?:[-.,]\d+)*$")
_DATE = re.compile(r"^(0?[1-9]|1[0-2])[/-](\d{2}|\d{4})$")
_EMAIL = re.compile(r"^[\w.+-]+@[\w-]+(\.[\w-]+)+$")
_MIXED_ID = re.compile(r"^(?=(?:.*\d){5})(?=.*[A-Za-z])[A-Za-z0-9-]+$")


def check_policy(name: Optional[str]) -> str:
    policy = (name or DEFAULT_POLICY).strip().lower()
    if policy not in POLICIES:
        raise ValueError(f"unknown redaction policy {name!r} (use off, pci or pii)")
    return policy


@dataclass(frozen=True)
class RedactedEvent(TranscriptEvent):
    """What the sinks get. `channel_text`: the clear text for the channel's variables, set only in
    an IVR call with a grammar (its answer is what the dialplan asked for)."""

    channel_text: Optional[str] = None


def channel_text(event: TranscriptEvent) -> str:
    return getattr(event, "channel_text", None) or event.text


# ---------------------------------------------------------------- pieces of a transcript

@dataclass(frozen=True)
class Piece:
    text: str  # as in the transcript, with its leading space
    start_s: float
    end_s: float
    probability: float

    @property
    def core(self) -> str:
        return self.text.strip().strip(_EDGE_PUNCT)

    @property
    def word(self) -> str:
        return self.core.lower()


def pieces_of(event: TranscriptEvent) -> list[Piece]:
    if event.words:
        return [Piece(w.text, w.start_s, w.end_s, w.probability) for w in event.words]
    return [Piece(m.group(), event.start_s, event.end_s, 1.0)
            for m in re.finditer(r"\s*\S+", event.text)]


def digits_of(piece: Piece, previous_digit: bool) -> Optional[str]:
    """The digits a piece stands for ("4111", "4111-1111", "four", "oh" or "to" after a digit),
    or None."""
    core = piece.core
    digits = re.sub(r"\D", "", core)
    if _DIGITS.match(core):
        return digits
    if len(digits) >= 2 and 2 * len(digits) >= len(re.sub(r"\W", "", core)):
        return digits  # mostly digits: "5.963A", "1990s" as ASR writes a number it half heard
    word = piece.word
    if word in _HOMOPHONES:
        return _HOMOPHONES[word] if previous_digit else None
    if word in _DIGIT_WORDS:
        return _DIGIT_WORDS[word]
    return _misspelt_digit(word) if previous_digit else None


def _misspelt_digit(word: str) -> Optional[str]:
    """A digit word one letter off ("nuebe" for "nueve"), taken only among digits."""
    if len(word) < 4:
        return None
    for known, digit in _DIGIT_WORDS.items():
        if len(known) >= 4 and _one_edit_apart(word, known):
            return digit
    return None


def _one_edit_apart(a: str, b: str) -> bool:
    if abs(len(a) - len(b)) > 1:
        return False
    if len(a) == len(b):
        return sum(x != y for x, y in zip(a, b)) == 1
    short, long_ = sorted((a, b), key=len)
    return any(long_[:i] + long_[i + 1:] == short for i in range(len(long_)))


@dataclass
class Run:
    """Consecutive digit pieces (fillers and 'double'/'triple' allowed inside)."""

    first: int
    last: int
    digits: str
    open_end: bool  # reaches the end of the pieces: the next final may go on with it


def find_runs(pieces: Sequence[Piece]) -> list[Run]:
    runs: list[Run] = []
    current: Optional[Run] = None
    repeat = 1
    for index, piece in enumerate(pieces):
        digits = digits_of(piece, current is not None)
        if digits is not None:
            digits *= repeat
            repeat = 1
            if current is None:
                current = Run(index, index, digits, False)
            else:
                current.last, current.digits = index, current.digits + digits
            continue
        if piece.word in _REPEAT:
            repeat = _REPEAT[piece.word]
            continue
        if current is not None and (piece.word in _FILLERS or not piece.core):
            continue  # "uh", or a word of punctuation alone ("-" of "971-0" as timed words split it)
        repeat = 1
        if current is not None:
            runs.append(current)
            current = None
    if current is not None:
        current.open_end = all(p.word in _FILLERS or not p.core for p in pieces[current.last + 1:])
        runs.append(current)
    return runs


def luhn_valid(digits: str) -> bool:
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def _context(pieces: Sequence[Piece], before: int) -> tuple[bool, bool]:
    """(a card word, a not-card word such as "order" or "phone") among the words before a run."""
    words = [p.word for p in pieces[max(0, before - CONTEXT_WORDS):before]]
    card = any(_CARD_WORD.search(w) for w in words)
    other = any(_NOT_CARD_WORD.match(w) for w in words)
    return card, other


def is_card(digits: str, card_word: bool, other_word: bool) -> bool:
    """13-19 digits, unless a word such as "order" or "phone" says otherwise and the Luhn check
    fails (ASR drops and mishears digits of a card read aloud: its check digit is no proof);
    more than 19 (a card with its expiry and code read on); 8-12 right after a card word."""
    n = len(digits)
    if n > CARD_MAX:
        return True
    if n >= CARD_MIN:
        return luhn_valid(digits) or card_word or not other_word
    return card_word and n >= CONTEXT_MIN


# ---------------------------------------------------------------- rewriting

def replace_spans(pieces: Sequence[Piece], spans: dict[tuple[int, int], str]) -> list[Piece]:
    """Each (first, last) span of pieces becomes one piece `label`, keeping the first piece's
    leading space and start, the last one's trailing punctuation and end."""
    out: list[Piece] = []
    index = 0
    starts = {first: (last, label) for (first, last), label in spans.items()}
    while index < len(pieces):
        if index not in starts:
            out.append(pieces[index])
            index += 1
            continue
        last, label = starts[index]
        head, tail = pieces[index], pieces[last]
        lead = head.text[:len(head.text) - len(head.text.lstrip())]
        trail = tail.text.rstrip()[len(tail.text.rstrip().rstrip(".,;:!?")):]
        probability = min(p.probability for p in pieces[index:last + 1])
        out.append(Piece(lead + label + trail, head.start_s, tail.end_s, probability))
        index = last + 1
    return out


def rebuilt(event: TranscriptEvent, pieces: Sequence[Piece], clear: Optional[str] = None
            ) -> RedactedEvent:
    words = tuple(Word(p.text, p.start_s, p.end_s, p.probability) for p in pieces) if event.words else ()
    text = "".join(p.text for p in pieces)
    if event.text[:1] != " ":
        text = text.lstrip()
    fields = {f.name: getattr(event, f.name) for f in dataclasses.fields(TranscriptEvent)}
    fields.update(text=text, words=words)
    return RedactedEvent(**fields, channel_text=clear)


def pii_spans(pieces: Sequence[Piece], taken: set[int]) -> dict[tuple[int, int], str]:
    """E-mail addresses (written, or spoken as "x at y dot com"), tokens mixing letters and 5+
    digits; long digit runs are found with the runs."""
    spans: dict[tuple[int, int], str] = {}
    for index, piece in enumerate(pieces):
        if index in taken:
            continue
        if _EMAIL.match(piece.core):
            spans[(index, index)] = "[email]"
        elif _MIXED_ID.match(piece.core):
            spans[(index, index)] = "[id]"
        elif piece.word == "at" and index > 0:
            end = _spoken_email_end(pieces, index)
            if end is not None and not any(i in taken for i in range(index - 1, end + 1)):
                spans[(index - 1, end)] = "[email]"
    return spans


def _spoken_email_end(pieces: Sequence[Piece], at: int) -> Optional[int]:
    """'john at example dot com': the index of the last piece, or None."""
    if at + 3 >= len(pieces) or pieces[at + 2].word != "dot":
        return None
    if pieces[at + 1].core.isalnum() and pieces[at + 3].core.isalpha():
        return at + 3
    return None


# ---------------------------------------------------------------- one call's redaction

MAX_HELD = 8  # finals held together at most (a card read in many small groups)
MAX_HOLD_S = 30.0  # a hold that partials of more digits keep extending ends after this anyway


class CallRedactor:
    """One call's redaction: `final()` and `partial()` for each event, `due()`/`flush()` for
    finals held while a card number may still go on (see the module docstring)."""

    def __init__(self, policy: str = DEFAULT_POLICY, *, ivr: bool = False,
                 hold_s: float = HOLD_S) -> None:
        self.policy, self.ivr, self.hold_s = check_policy(policy), ivr, hold_s
        self._held: list[tuple[TranscriptEvent, list[Piece]]] = []
        self._held_since_s: Optional[float] = None  # the hold runs hold_s from here
        self._held_first_s = 0.0  # when the first final now held came
        self._card_open = False  # the last final released ended inside a card number
        # digits the last final released ended with, not (yet) a card: the next final's leading
        # digits are judged with them (a hold that timed out while the caller read on)
        self._carry = ""
        self._after_card_until_s = float("-inf")  # stream time: a code or expiry may follow

    @property
    def held(self) -> int:
        return len(self._held)

    def due(self, now_s: float) -> bool:
        return self._held_since_s is not None and now_s - self._held_since_s >= self.hold_s

    def hold_remaining_s(self, now_s: float) -> Optional[float]:
        if self._held_since_s is None:
            return None
        return max(0.0, self._held_since_s + self.hold_s - now_s)

    def final(self, event: TranscriptEvent, now_s: float) -> list[TranscriptEvent]:
        """The finals to pass on now, in order (none while this one is held)."""
        if self.policy == "off":
            return [event]
        pieces = pieces_of(event)
        if self.ivr:
            return [self._ivr_final(event, pieces)]
        self._held.append((event, pieces))
        chain = [p for _, held in self._held for p in held]
        runs = find_runs(chain)
        if runs and self._may_go_on(chain, runs[-1]) and len(self._held) < MAX_HELD:
            if self._held_since_s is None:
                self._held_since_s = self._held_first_s = now_s
            return []
        return self._release(chain, runs)

    def flush(self) -> list[TranscriptEvent]:
        """Release what is held (the hold timed out, or the call ended)."""
        if not self._held:
            return []
        chain = [p for _, held in self._held for p in held]
        return self._release(chain, find_runs(chain))

    def partial(self, event: TranscriptEvent, now_s: Optional[float] = None) -> TranscriptEvent:
        """The partial as it may be shown. One that goes on with digits while finals are held
        (the caller still reading the number) extends their hold, up to MAX_HOLD_S in all."""
        if self.policy == "off":
            return event
        pieces = pieces_of(event)
        continuing = self._card_open or bool(self._held) or bool(self._carry)
        after_card = event.start_s <= self._after_card_until_s
        spans: dict[tuple[int, int], str] = {}
        runs = find_runs(pieces)
        if (self._held and now_s is not None and runs and runs[0].first == 0
                and now_s - self._held_first_s < MAX_HOLD_S):
            self._held_since_s = max(self._held_since_s, now_s)
        for run in runs:
            if (len(run.digits) >= PARTIAL_MIN or (continuing and run.first == 0)
                    or (after_card and len(run.digits) >= 3)):
                spans[(run.first, run.last)] = "[number]"
        if self.policy == "pii":
            spans.update(pii_spans(pieces, _covered(spans)))
        return rebuilt(event, replace_spans(pieces, spans)) if spans else event

    # -- internals
    def _may_go_on(self, chain: Sequence[Piece], run: Run) -> bool:
        """Hold: the chain ends in a run that could still grow into a card number."""
        digits = self._digits(run)
        if not run.open_end or not PARTIAL_MIN <= len(digits) < CARD_MAX:
            return False
        card_word, other_word = _context(chain, run.first)
        if other_word and not card_word:
            return False  # "order 1234 5678", "my phone is 555 1234": passed on at once
        continuing = self._card_open and run.first == 0
        return not continuing and not is_card(digits, card_word, other_word)

    def _digits(self, run: Run) -> str:
        """A run's digits, with those carried from the last final when it starts this chain."""
        return self._carry + run.digits if run.first == 0 else run.digits

    def _ivr_final(self, event: TranscriptEvent, pieces: list[Piece]) -> TranscriptEvent:
        spans: dict[tuple[int, int], str] = {}
        for run in find_runs(pieces):
            if len(run.digits) >= PARTIAL_MIN:
                card_word, other_word = _context(pieces, run.first)
                spans[(run.first, run.last)] = ("[card]" if is_card(run.digits, card_word, other_word)
                                                else "[number]")
        if self.policy == "pii":
            spans.update(pii_spans(pieces, _covered(spans)))
        return rebuilt(event, replace_spans(pieces, spans), clear=event.text)

    def _release(self, chain: list[Piece], runs: list[Run]) -> list[TranscriptEvent]:
        labels = self._labels(chain, runs)
        released, offset = [], 0
        for event, pieces in self._held:
            spans = _spans_in(labels, offset, len(pieces))
            released.append(rebuilt(event, replace_spans(pieces, spans)) if spans else event)
            offset += len(pieces)
        self._card_open = bool(runs) and runs[-1].open_end and labels.get(runs[-1].last, ("",))[0] == "[card]"
        self._carry = self._carried(chain, runs[-1]) if runs and not self._card_open else ""
        self._held, self._held_since_s = [], None
        return released

    def _carried(self, chain: list[Piece], run: Run) -> str:
        """What a released chain's last run leaves for the next final: its digits, when it is
        open and not after a word such as "order" or "phone"."""
        card_word, other_word = _context(chain, run.first)
        if not run.open_end or (other_word and not card_word):
            return ""
        return self._digits(run)[-CARD_MAX:]

    def _labels(self, chain: list[Piece], runs: list[Run]) -> dict[int, tuple[str, int]]:
        """piece index -> (label, span number) for every piece to replace."""
        spans: dict[tuple[int, int], str] = {}
        for run in runs:
            label = self._run_label(chain, run)
            if label is not None:
                spans[(run.first, run.last)] = label
        spans.update(self._expiry_spans(chain, _covered(spans)))
        if self.policy == "pii":
            spans.update(pii_spans(chain, _covered(spans)))
        labels: dict[int, tuple[str, int]] = {}
        for number, ((first, last), label) in enumerate(sorted(spans.items())):
            for index in range(first, last + 1):
                labels[index] = (label, number)
        return labels

    def _run_label(self, chain: list[Piece], run: Run) -> Optional[str]:
        card_word, other_word = _context(chain, run.first)
        if (self._card_open and run.first == 0) or is_card(self._digits(run), card_word, other_word):
            self._after_card_until_s = chain[run.last].end_s + AFTER_CARD_S
            return "[card]"
        if chain[run.first].start_s <= self._after_card_until_s and 3 <= len(run.digits) <= 4:
            words = [p.word for p in chain[max(0, run.first - CONTEXT_WORDS):run.first]]
            if any(_EXPIRY_WORD.match(w) for w in words):
                return "[expiry]"
            if len(run.digits) == 4 and not any(_CODE_WORD.match(w) for w in words) \
                    and 1 <= int(run.digits[:2]) <= 12:
                return "[expiry]"
            return "[cvv]"
        if self.policy == "pii" and len(run.digits) >= 9:
            return "[number]"
        return None

    def _expiry_spans(self, chain: list[Piece], taken: set[int]) -> dict[tuple[int, int], str]:
        """After a card: '12/27', or a month name and a year."""
        spans: dict[tuple[int, int], str] = {}
        for index, piece in enumerate(chain):
            if index in taken or piece.start_s > self._after_card_until_s:
                continue
            if _DATE.match(piece.core):
                spans[(index, index)] = "[expiry]"
            elif (_MONTHS.match(piece.word) and index + 1 < len(chain)
                  and re.fullmatch(r"\d{2}|\d{4}", chain[index + 1].core)
                  and index + 1 not in taken):
                spans[(index, index + 1)] = "[expiry]"
        return spans


def _covered(spans: dict[tuple[int, int], str]) -> set[int]:
    return {i for first, last in spans for i in range(first, last + 1)}


def _spans_in(labels: dict[int, tuple[str, int]], offset: int, count: int
              ) -> dict[tuple[int, int], str]:
    """The spans of one final of a chain, in its own piece numbers (a span crossing two finals
    becomes one in each)."""
    spans: dict[tuple[int, int], str] = {}
    current: Optional[tuple[int, int, str, int]] = None
    for local in range(count):
        found = labels.get(offset + local)
        if found is not None and current is not None and current[3] == found[1]:
            current = (current[0], local, current[2], current[3])
            continue
        if current is not None:
            spans[(current[0], current[1])] = current[2]
            current = None
        if found is not None:
            current = (local, local, found[0], found[1])
    if current is not None:
        spans[(current[0], current[1])] = current[2]
    return spans


def redact_dtmf(dtmf: Sequence[tuple[float, str]], policy: str) -> list[tuple[float, str]]:
    """Runs of DTMF_RUN_MIN or more digits (a card or a PIN typed) have their digits replaced by
    X, times kept; shorter runs (menu choices), * and # stay."""
    if check_policy(policy) == "off":
        return list(dtmf)
    out = list(dtmf)
    start = 0
    for index in range(len(out) + 1):
        if index < len(out) and out[index][1].isdigit():
            continue
        if index - start >= DTMF_RUN_MIN:
            for k in range(start, index):
                out[k] = (out[k][0], "X")
        start = index + 1
    return out
