"""Where the streaming value types used to live: ``whisper.streaming.types`` (kept for importers)."""
from .streaming.types import EngineStats, EventCallback, EventKind, StreamOptions, TranscriptEvent, Word

__all__ = ["EngineStats", "EventCallback", "EventKind", "StreamOptions", "TranscriptEvent", "Word"]
