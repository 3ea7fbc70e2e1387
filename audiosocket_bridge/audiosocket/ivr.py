"""When a speech-IVR call (``Mode: ivr``) ends its AudioSocket session, as a pure rule.

The session ends at the caller's first final with words in it, so that the dialplan after
AudioSocket() can branch on ${TRANSCRIPT}; with a grammar, once the finals so far make a whole
answer (a number read in groups spans several finals); or, when none has come within the no-input
timeout (counted from the engine stream's opening), with nothing said. The caller of the policy
reports finals and the timeout and ends the session with the reason it gets back.
"""
from __future__ import annotations

from typing import List, Optional

from whisper.grammar import Grammar, parse_grammar

from ..registrations import CallOptions

IVR_FINAL = "ivr-final"
IVR_NO_INPUT = "ivr-no-input"
DEFAULT_NO_INPUT_TIMEOUT_S = 10.0  # when the dialplan gives no NoInputTimeout
# How long the hangup frame waits for the sinks to deliver the final (AMI: Asterisk's answer to
# the Setvar of TRANSCRIPT), so that the dialplan after AudioSocket() reads it.
SETTLE_TIMEOUT_S = 2.0


class IvrPolicy:
    def __init__(self, no_input_timeout_s: Optional[float] = None, grammar: Optional[Grammar] = None) -> None:
        self.no_input_timeout_s = no_input_timeout_s or DEFAULT_NO_INPUT_TIMEOUT_S
        self.grammar = grammar
        self._heard = False
        self._parts: List[str] = []

    @classmethod
    def for_options(cls, options: CallOptions) -> Optional["IvrPolicy"]:
        """The policy of a call in IVR mode; None for a call that is only transcribed."""
        if options.mode != "ivr":
            return None
        return cls(options.no_input_timeout_s, parse_grammar(options.grammar) if options.grammar else None)

    def after_final(self, text: str) -> Optional[str]:
        """The end reason if this final ends the session, else None."""
        if self._heard or not text.strip():
            return None
        if self.grammar is not None:
            self._parts.append(text.strip())
            if self.grammar.answer(self.grammar.join(self._parts)) is None:
                return None
        self._heard = True
        return IVR_FINAL

    def after_no_input_timeout(self) -> Optional[str]:
        """The end reason once the no-input timeout has passed, unless the caller was heard."""
        return None if self._heard else IVR_NO_INPUT
