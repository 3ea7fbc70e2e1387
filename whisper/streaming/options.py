"""The engine's settings, fixed when it is built (per-stream settings are ``types.StreamOptions``)."""
from __future__ import annotations

from dataclasses import dataclass

from ..language import require_known
from .agreement import AgreementOptions
from .endpointing import EndpointOptions
from .policy import GuardOptions
from .types import StreamOptions
from .vad import VadOptions


@dataclass(frozen=True)
class EngineOptions:
    endpoint: EndpointOptions = EndpointOptions()
    vad: VadOptions = VadOptions()
    guard: GuardOptions = GuardOptions()  # also the temperatures unreliable finals are re-decoded at
    agreement: AgreementOptions = AgreementOptions()  # finals before the speaker stops (LocalAgreement-2)
    max_batch: int = 8  # windows per encoder/decoder batch of finals
    max_partial_batch: int = 4  # partials per batch: small, so a final never waits long behind them
    # First partials that may ride along with a batch of finals: with many calls a batch of finals
    # nearly always waits, and a first partial queued behind it came 1.9 s p50 into the utterance
    # (32 calls, 2 AMD cores). One rider per batch, with one single-threaded engine per core
    # (pool.py), gave 0.8-0.9 s at finals' p95 0.56-0.58 s; on one engine for both cores riders
    # cost finals more (p95 0.6-0.7 -> 1.1-1.6 s with 2).
    first_partial_riders: int = 1
    # An utterance whose speculative decode at a pause is digits or unsure (policy.wants_more_audio)
    # waits endpoint.held_trailing_silence_s for the caller to go on, so that a number read with
    # pauses, or a fragment, is decoded with what follows it rather than alone.
    hold_unsure: bool = True
    partial_budget: float = 0.35  # most of the scheduler's time partials may take, over the last 2 s
    min_partial_audio_s: float = 0.6
    max_pending_audio_s: float = 120.0  # per stream, not yet processed; beyond it the oldest audio is dropped
    behind_after_s: float = 2.0  # a final waiting longer than this means the engine is behind
    tick_s: float = 0.02


def check_stream_options(options: StreamOptions, multilingual: bool) -> None:
    """Languages, grammar and vocabulary are refused when the stream is opened, not later in the
    scheduler thread."""
    asked = [options.language] if options.language is not None else list(options.language_candidates)
    require_known(asked)
    if not multilingual and any(code != "en" for code in asked):
        raise ValueError(f"this model is English-only; it can't transcribe language(s) {', '.join(asked)}")
    if options.grammar is not None:
        from ..grammar import parse_grammar

        parse_grammar(options.grammar)
    if options.vocabulary is not None:
        from ..vocabulary import parse_vocabulary

        parse_vocabulary(options.vocabulary)
