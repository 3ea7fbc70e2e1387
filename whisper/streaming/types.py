"""Value types shared by the streaming engine and its users: pure Python, no torch, no model code."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Literal, Optional, Tuple

EventKind = Literal["partial", "final"]


@dataclass(frozen=True)
class StreamOptions:
    """Per-stream settings, fixed when the stream is opened."""

    # None: detect (multilingual models only), per utterance until the call's finals agree on one
    # language (whisper.language.LanguageEvidence), then that one for the rest of the stream
    language: Optional[str] = None
    language_candidates: Tuple[str, ...] = ()  # detect among these only, e.g. ("es", "en")
    task: str = "transcribe"  # or "translate"
    initial_prompt: Optional[str] = None  # text that conditions every utterance of the stream
    partials: bool = True  # emit "partial" events while the caller speaks
    partial_interval_s: float = 0.8
    word_timestamps: bool = True
    # An IVR grammar (whisper.grammar.parse_grammar: "digits:4-10", "yesno", "choices:a|b"): every
    # decode is constrained to it and the text is its canonical answer ("4711"), or empty.
    grammar: Optional[str] = None
    # A custom vocabulary (whisper.vocabulary.parse_vocabulary: "Zorblax|Quentara Pro|Okonkwo"): its
    # phrases are boosted while decoded, within a bound (they are not forced).
    vocabulary: Optional[str] = None
    # Silence that ends an utterance, if not the engine's (EndpointOptions.trailing_silence_s):
    # longer for digit strings, which callers read in groups with pauses.
    trailing_silence_s: Optional[float] = None


@dataclass(frozen=True)
class Word:
    text: str
    start_s: float  # in the stream's own clock: seconds of audio pushed before this word
    end_s: float
    probability: float


@dataclass(frozen=True)
class TranscriptEvent:
    """A partial (may still change) or final (never revised) transcript of one utterance."""

    stream_id: str
    kind: EventKind
    segment_index: int  # 0, 1, 2, ... per stream; a partial carries the index its final will have
    text: str
    start_s: float
    end_s: float
    language: str
    avg_logprob: float
    no_speech_prob: float
    words: Tuple[Word, ...] = field(default_factory=tuple)

    @property
    def is_final(self) -> bool:
        return self.kind == "final"


EventCallback = Callable[[TranscriptEvent], None]


@dataclass(frozen=True)
class EngineStats:
    active_streams: int
    queued_audio_s: float
    lag_s: float
    behind: bool
    partials_skipped: int
    finals_emitted: int
    partials_emitted: int
    audio_dropped_s: float
    window_cost_s: float = 0.0  # measured seconds per decoded window (0: not yet measured)
    partial_interval_s: float = 0.0  # how far apart a talking stream's partials are now, at least
