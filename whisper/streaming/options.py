"""The engine's settings, fixed when it is built (per-stream settings are ``types.StreamOptions``)."""
from __future__ import annotations

import difflib
import math
from dataclasses import dataclass, fields, is_dataclass, replace
from typing import Any, Dict, Iterable, List, Mapping, get_args, get_type_hints

from ..language import require_known
from .endpointing import EndpointOptions
from ..policy import GuardOptions
from .types import StreamOptions
from .vad import VadOptions


@dataclass(frozen=True)
class EngineOptions:
    endpoint: EndpointOptions = EndpointOptions()
    vad: VadOptions = VadOptions()
    guard: GuardOptions = GuardOptions()  # also the temperatures unreliable finals are re-decoded at
    # Windows per encoder/decoder batch of finals, speculative ones riding along included (they
    # fill a batch up to this). 24 was tried: a decoding step costs less per row in a larger batch
    # (tiny.en, AMD EPYC, 1 thread: 8 ms for 1 row, 16 for 8, 40 for 32), but the encoder does
    # not, more speculative decodes ride along, and at 32 and 64 call-mix calls on 2 cores the
    # difference was smaller than between runs of one setting (docs/benchmarks.rst); 8 keeps a
    # batch's memory and its encoder time before the first step smaller.
    max_batch: int = 8
    # ... and at most this much audio encoded in one: it bounds a batch's encoder time before its
    # first decoding step and its working memory (cross-attention keys and values; tiny.en about
    # 0.6 MiB and base 1.2 MiB per encoded second). tiny.en encodes an utterance and 2 s; base a
    # whole 30 s window (427 ms of encoder on the CPU above).
    max_batch_audio_s: float = 240.0
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


# ---------------------------------------------------------------- by name, from text
# Every field of EngineOptions, also inside its nested option groups, has a dotted name
# ("endpoint.trailing_silence_s", "guard.fallback.temperatures"): the bridge sets them from flags,
# the environment and its INI file, and an API user may set them from text the same way.

def option_defaults(options: Any = None, prefix: str = "") -> Dict[str, Any]:
    """{dotted name: value} of every leaf field of `options` (default: EngineOptions())."""
    options = EngineOptions() if options is None else options
    found: Dict[str, Any] = {}
    for f in fields(options):
        value = getattr(options, f.name)
        if is_dataclass(value):
            found.update(option_defaults(value, prefix + f.name + "."))
        else:
            found[prefix + f.name] = value
    return found


def with_options(options: EngineOptions, settings: Mapping[str, str]) -> EngineOptions:
    """`options` with the named fields set from text; ValueError (one line) for an unknown name or
    a value of the wrong kind."""
    for name, text in settings.items():
        options = _replaced(options, name.split("."), name, text)
    return options


def parse_settings(entries: Iterable[str]) -> Dict[str, str]:
    """{"name": "value"} from "name=value" entries; a later entry for a name wins."""
    found: Dict[str, str] = {}
    for entry in entries:
        name, sep, value = entry.partition("=")
        if not sep or not name.strip():
            raise ValueError(f"engine option {entry!r}: expected NAME=VALUE, e.g. endpoint.trailing_silence_s=0.8")
        found[name.strip().replace("-", "_")] = value.strip()
    return found


def _replaced(group: Any, path: List[str], name: str, text: str) -> Any:
    kinds = {f.name: f for f in fields(group)}
    if path[0] not in kinds:
        close = difflib.get_close_matches(name, list(option_defaults()), n=1)
        hint = f" (did you mean {close[0]}?)" if close else " (audiosocket-bridge --list-engine-options lists them)"
        raise ValueError(f"unknown engine option {name!r}{hint}")
    current = getattr(group, path[0])
    if len(path) > 1:
        if not is_dataclass(current):
            raise ValueError(f"unknown engine option {name!r}: {path[0]} has no parts")
        return replace(group, **{path[0]: _replaced(current, path[1:], name, text)})
    if is_dataclass(current):
        raise ValueError(f"engine option {name!r} is a group: name one of its fields")
    hint = get_type_hints(type(group))[path[0]]
    return replace(group, **{path[0]: _parsed(name, text, current, hint)})


def _parsed(name: str, text: str, default: Any, hint: Any) -> Any:
    optional = type(None) in get_args(hint)
    if optional and text.strip().lower() in ("", "none", "off"):
        return None
    try:
        if isinstance(default, bool):
            return _BOOLS[text.strip().lower()]
        if isinstance(default, tuple):
            item = get_args(hint)[0] if get_args(hint) else str
            return tuple(_scalar(part, item) for part in text.replace(",", " ").split())
        value = _scalar(text, _scalar_kind(default, hint))
    except (KeyError, ValueError):
        raise ValueError(f"engine option {name!r}: {text!r} is not a {_kind_name(default, hint)}") from None
    return _checked(name, value, default)


_BOOLS = {"1": True, "yes": True, "true": True, "on": True, "0": False, "no": False, "false": False, "off": False}


def _scalar(text: str, kind: Any) -> Any:
    text = text.strip()
    if kind is float:
        value = float(text)
        if not math.isfinite(value):
            raise ValueError(text)
        return value
    return kind(text)


# Where a value of the default's sign still breaks the engine: batches of nothing, a scheduler that
# spins, utterances longer than the model's 30 s window (with pre- and post-roll).
_LIMITS = {"max_batch": (1, 64), "max_batch_audio_s": (1.0, 3600.0), "max_partial_batch": (1, 64),
           "tick_s": (0.001, 1.0), "max_pending_audio_s": (1.0, 3600.0), "endpoint.trailing_silence_s": (0.1, 10.0),
           "endpoint.held_trailing_silence_s": (0.1, 10.0), "endpoint.max_utterance_s": (1.0, 28.0),
           "endpoint.number_max_utterance_s": (1.0, 28.0), "vad.smooth_frames": (1, 50),
           "vad.floor_window_s": (0.1, 60.0)}


def _checked(name: str, value: Any, default: Any) -> Any:
    """A number keeps the sign of its default: durations, counts and rates can't go negative, and
    log-probabilities and levels in dBFS can't go positive."""
    if isinstance(value, (int, float)) and isinstance(default, (int, float)):
        if (default >= 0 > value) or (default < 0 < value):
            sign = "0 or more" if default >= 0 else "0 or less"
            raise ValueError(f"engine option {name!r}: must be {sign}, got {value:g}")
    low, high = _LIMITS.get(name, (None, None))
    if low is not None and not low <= value <= high:
        raise ValueError(f"engine option {name!r}: must be {low:g} to {high:g}, got {value:g}")
    return value


def _scalar_kind(default: Any, hint: Any) -> Any:
    """The type of a field's value: its default's, or for a None default the hint's other type."""
    if default is not None:
        return type(default)
    return next((arg for arg in get_args(hint) if arg is not type(None)), str)


def _kind_name(default: Any, hint: Any) -> str:
    if isinstance(default, bool):
        return "boolean"
    if isinstance(default, tuple):
        return "list of numbers" if default and isinstance(default[0], (int, float)) else "list"
    return {float: "number", int: "whole number"}.get(_scalar_kind(default, hint), "string")
