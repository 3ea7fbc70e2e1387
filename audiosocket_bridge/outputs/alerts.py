"""Phrase alerts: phrases or patterns (``--alert``, and the dialplan's per-call ``alerts`` option)
matched on each final; a match is an Alert handed to the sinks that take alerts (storage, so the
webhook's JSON and the page have it; AMI as ``UserEvent: TranscriptAlert``; the caption stream).

A phrase matches its words in order, whole words, any case, with any spaces or punctuation between
them ("cancel my contract" matches "Cancel, my contract."). ``re:PATTERN`` is a Python regular
expression matched case-insensitively (bridge-wide only: a dialplan option takes phrases,
``|``-separated, as language and grammar lists do).
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Iterable, Optional, Sequence

from .sinks import CallInfo

if TYPE_CHECKING:
    from whisper.streaming.types import TranscriptEvent

log = logging.getLogger(__name__)

MAX_RULE_CHARS = 200
MAX_RULES = 100
REGEX_PREFIX = "re:"


@dataclass(frozen=True)
class AlertRule:
    name: str  # as configured: the phrase, or "re:PATTERN"
    pattern: re.Pattern


@dataclass(frozen=True)
class Alert:
    rule: str
    matched: str  # the text the rule matched
    segment: int  # the final's stored index
    start_s: float
    end_s: float
    text: str  # the whole final

    def message(self, uuid: str) -> dict:
        """The caption stream's `alert` message."""
        return {"type": "alert", "call": uuid, "segment": self.segment, "start_s": self.start_s,
                "end_s": self.end_s, "rule": self.rule, "matched": self.matched,
                "text": self.text}


def phrase_rule(phrase: str) -> AlertRule:
    words = re.findall(r"[\w']+", phrase)
    if not words or len(phrase) > MAX_RULE_CHARS:
        raise ValueError(f"alert phrase {phrase!r}: give 1 to {MAX_RULE_CHARS} characters with a word")
    body = r"[\W_]+".join(re.escape(word) for word in words)
    return AlertRule(phrase.strip(), re.compile(rf"(?<!\w){body}(?!\w)", re.IGNORECASE))


def parse_rule(spec: str) -> AlertRule:
    """A phrase, or ``re:PATTERN``; ValueError (one line) for a bad one."""
    if not spec.startswith(REGEX_PREFIX):
        return phrase_rule(spec)
    source = spec[len(REGEX_PREFIX):]
    if not source or len(source) > MAX_RULE_CHARS:
        raise ValueError(f"alert pattern {spec!r}: give 1 to {MAX_RULE_CHARS} characters")
    try:
        return AlertRule(spec, re.compile(source, re.IGNORECASE))
    except re.error as error:
        raise ValueError(f"alert pattern {spec!r}: {error}") from None


def parse_rules(specs: Iterable[str]) -> tuple[AlertRule, ...]:
    rules = tuple(parse_rule(spec) for spec in specs if spec.strip())
    if len(rules) > MAX_RULES:
        raise ValueError(f"at most {MAX_RULES} alert rules, got {len(rules)}")
    return rules


def call_rules(spec: Optional[str]) -> tuple[AlertRule, ...]:
    """The dialplan's per-call ``alerts`` option: phrases separated by ``|``."""
    return parse_rules(phrase_rule(p).name for p in (spec or "").split("|") if p.strip())


def matches(rules: Sequence[AlertRule], text: str) -> list[tuple[str, str]]:
    """(rule, matched text) for each rule the text matches (its first match)."""
    found = []
    for rule in rules:
        hit = rule.pattern.search(text)
        if hit is not None:
            found.append((rule.name, hit.group(0)))
    return found


class AlertSink:
    """Matches finals; hands each Alert to `receivers` (objects with ``async alert(call, alert)``),
    each in turn, a failure of one logged and the next still called. Place it after the
    receivers' own sinks, so that a final reaches them before its alert."""

    def __init__(self, rules: Sequence[AlertRule], receivers: Sequence,
                 segment_offset: Callable[[str], int] = lambda uuid: 0) -> None:
        self.rules, self.receivers = tuple(rules), list(receivers)
        self._segment_offset = segment_offset
        self._call_rules: dict[str, tuple[AlertRule, ...]] = {}
        self._offsets: dict[str, int] = {}
        self.raised = 0

    async def call_started(self, call: CallInfo) -> None:
        self._offsets[call.uuid] = self._segment_offset(call.uuid)
        try:
            self._call_rules[call.uuid] = self.rules + call_rules(call.registration.options.alerts)
        except ValueError as error:  # checked at registration; a stored one could be older
            log.warning("call %s: alerts option ignored: %s", call.uuid, error)
            self._call_rules[call.uuid] = self.rules

    async def transcript(self, call: CallInfo, event: TranscriptEvent) -> None:
        if not event.is_final:
            return
        segment = self._offsets.get(call.uuid, 0) + event.segment_index
        for rule, matched in matches(self._call_rules.get(call.uuid, self.rules), event.text):
            self.raised += 1
            log.info("call %s: alert %r at segment %d", call.uuid, rule, segment)
            alert = Alert(rule, matched, segment, event.start_s, event.end_s, event.text.strip())
            for receiver in self.receivers:
                try:
                    await receiver.alert(call, alert)
                except Exception:  # noqa: BLE001 - one receiver must not stop the others
                    log.exception("alert receiver %s failed", type(receiver).__name__)

    async def call_ended(self, call: CallInfo) -> None:
        self._call_rules.pop(call.uuid, None)
        self._offsets.pop(call.uuid, None)

    async def close(self) -> None:
        return None
