"""The channel variables that carry a call's transcript into the dialplan, in the order they
are set: TRANSCRIPT_FULL_1..N (the call so far, split on words to fit one AMI line each),
TRANSCRIPT_PARTS (N), TRANSCRIPT_SEGMENTS, for a grammar call TRANSCRIPT_CONFIDENCE and, last,
TRANSCRIPT, so that a dialplan that sees TRANSCRIPT change also sees the others consistent.

The AMI sink sets them after every final, only the parts that changed, with TRANSCRIPT the latest
utterance (CallCaptionState); the transcript AGI sets them all once, with TRANSCRIPT the whole
call, and then TRANSCRIPT_STATUS.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Optional, Sequence

from whisper.grammar import Grammar

from .ami_protocol import SETVAR_VALUE_MAX_BYTES, clean_value, setvar, truncate_utf8


def chunk_text(text: str, max_bytes: int = SETVAR_VALUE_MAX_BYTES) -> list[str]:
    """Split on spaces into pieces of at most `max_bytes` UTF-8 bytes each.

    Greedy from the start, so appending text to `text` only ever changes the
    last piece(s): earlier pieces stay identical and need not be re-sent.
    A single word longer than `max_bytes` is cut on a character boundary.
    """
    pieces: list[str] = []
    current = ""
    for word in clean_value(text).split():
        candidate = f"{current} {word}" if current else word
        if len(candidate.encode("utf-8")) <= max_bytes:
            current = candidate
            continue
        if current:
            pieces.append(current)
        while len(word.encode("utf-8")) > max_bytes:
            head = truncate_utf8(word, max_bytes)
            pieces.append(head)
            word = word[len(head):]
        current = word
    if current:
        pieces.append(current)
    return pieces


def transcript_variables(parts: Sequence[str], segments: int, transcript: str,
                         previous_parts: Optional[Sequence[str]] = None,
                         confidence: Optional[float] = None) -> list[tuple[str, str]]:
    """(name, value) in the order to set them. With `previous_parts` (what the channel has) only
    the TRANSCRIPT_FULL_n that differ are set, and TRANSCRIPT_PARTS only when it may change.
    `confidence` (grammar calls) becomes TRANSCRIPT_CONFIDENCE, set just before TRANSCRIPT."""
    old = previous_parts
    full = [(f"TRANSCRIPT_FULL_{n}", part) for n, part in enumerate(parts, start=1)
            if old is None or n > len(old) or old[n - 1] != part]
    if old is None or full or len(parts) != len(old):
        full.append(("TRANSCRIPT_PARTS", str(len(parts))))
    full.append(("TRANSCRIPT_SEGMENTS", str(segments)))
    if confidence is not None:
        full.append(("TRANSCRIPT_CONFIDENCE", f"{confidence:.2f}"))
    return full + [("TRANSCRIPT", transcript)]


@dataclass
class CallCaptionState:
    """What the AMI sink has queued for one call so far (drives the TRANSCRIPT_FULL diff)."""

    finals: list[str] = field(default_factory=list)
    sent_parts: list[str] = field(default_factory=list)
    channel: Optional[str] = None

    def final_setvars(self, channel: Optional[str], text: str, confidence: Optional[float] = None,
                      grammar: Optional[Grammar] = None) -> list[dict]:
        """Setvar actions for one new final. Without a channel nothing can be set; once one is
        known, every part is (re)sent. With a grammar, TRANSCRIPT is the answer so far (a number
        read in groups spans several finals), not the latest utterance."""
        cleaned = clean_value(text)
        if cleaned:
            self.finals.append(cleaned)
        if not channel:
            return []
        if channel != self.channel:
            self.channel, self.sent_parts = channel, []
        parts = chunk_text(" ".join(self.finals))
        transcript = grammar.join(self.finals) if grammar is not None else cleaned
        variables = transcript_variables(parts, len(self.finals), transcript, self.sent_parts, confidence)
        self.sent_parts = parts
        return [setvar(channel, name, value) for name, value in variables]


def answer_confidence(avg_logprob: float) -> float:
    """A grammar answer's confidence, 0-1: the geometric mean of its tokens' probabilities."""
    return math.exp(avg_logprob) if math.isfinite(avg_logprob) else 0.0
