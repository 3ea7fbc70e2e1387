"""A call's language from all it has said so far, not from each utterance alone (pure Python).

Whisper picks the language of every window from that window's audio. On telephone utterances of
1-3 s that goes wrong often enough to matter (base: 4 of 25 Spanish Asterisk prompts come out as
Italian, Polish or Hindi) and a wrong language ruins the utterance's text. A caller keeps one
language, so the stream sums the evidence of its finals: log-probabilities per language, each
final weighted by its length (up to `full_weight_s`), and once the finals hold `decide_after_s`
of such speech and the combined posterior of one language reaches `decide_at_p`, the rest of the
call is decoded in it, without detection. Before that, each utterance is detected with the
evidence so far as a prior (`prior`): a call's second utterance is not judged alone either.
One utterance never decides alone: its first seconds can be confidently wrong (conf-usermenu's
first half is Italian to the model at over 0.95).

`candidates` (from the dialplan or --language es|en) restrict detection to those languages from
the first utterance on.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterable, Mapping, Optional

MIN_PROBABILITY = 1e-6  # a language the model rules out still keeps a floor


def parse_languages(text: Optional[str]) -> tuple[Optional[str], tuple[str, ...]]:
    """'es' -> ('es', ()); 'es|en' or 'es,en' -> (None, ('es', 'en')); '', None or 'auto' ->
    (None, ()): detect among every language."""
    codes = [code.strip().lower() for code in (text or "").replace(",", "|").split("|")]
    codes = [code for code in codes if code and code != "auto"]
    if len(codes) == 1:
        return codes[0], ()
    return None, tuple(dict.fromkeys(codes))


def require_known(codes: Iterable[str]) -> None:
    """ValueError naming the codes that are no language Whisper knows."""
    from .tokenizer import LANGUAGES  # tiktoken, not torch

    unknown = [code for code in codes if code not in LANGUAGES]
    if unknown:
        raise ValueError(f"unknown language code(s) {', '.join(unknown)} (use e.g. en, es, es|en)")


def check_languages(text: Optional[str]) -> Optional[str]:
    """`text` as given (one code or candidates, see parse_languages), once every code is known."""
    language, candidates = parse_languages(text)
    require_known([language] if language else candidates)
    return text


@dataclass
class LanguageEvidence:
    candidates: tuple[str, ...] = ()
    decide_at_p: float = 0.95
    decide_after_s: float = 4.0
    full_weight_s: float = 3.0
    _log_evidence: dict[str, float] = field(default_factory=dict)
    _evidence_s: float = 0.0
    _decided: Optional[str] = None

    def add(self, probabilities: Mapping[str, float], duration_s: float) -> None:
        """One final's language probabilities (DecodingResult.language_probs)."""
        if self._decided is not None or not probabilities:
            return
        weight = min(1.0, max(0.0, duration_s) / self.full_weight_s)
        self._evidence_s += weight * self.full_weight_s
        for code, p in probabilities.items():
            if not self.candidates or code in self.candidates:
                self._log_evidence[code] = (self._log_evidence.get(code, 0.0)
                                            + weight * math.log(max(p, MIN_PROBABILITY)))
        best, p = self.best()
        if best is not None and p >= self.decide_at_p and self._evidence_s >= self.decide_after_s:
            self._decided = best

    def prior(self, duration_s: float) -> dict[str, float]:
        """Log-weights per language for detecting an utterance of ``duration_s`` before the call's
        language is decided: the evidence so far, on the scale of that utterance's own
        log-probabilities (which count ``weight`` times in the evidence), so that the language
        chosen is the one the evidence would favour with the utterance added. Empty until a final
        has spoken."""
        weight = min(1.0, max(0.0, duration_s) / self.full_weight_s)
        if not self._log_evidence or weight <= 0:
            return {}
        return {code: value / weight for code, value in self._log_evidence.items()}

    def posterior(self) -> dict[str, float]:
        if not self._log_evidence:
            return {}
        top = max(self._log_evidence.values())
        weights = {code: math.exp(value - top) for code, value in self._log_evidence.items()}
        total = sum(weights.values())
        return {code: weight / total for code, weight in weights.items()}

    def best(self) -> tuple[Optional[str], float]:
        posterior = self.posterior()
        if not posterior:
            return None, 0.0
        code = max(posterior, key=posterior.get)
        return code, posterior[code]

    def decided(self) -> Optional[str]:
        """The call's language once the evidence is strong enough; None until then."""
        return self._decided

