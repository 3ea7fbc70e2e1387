"""Where the stream simulator used to live: ``whisper.streaming.sim`` (kept for importers)."""
from .streaming.sim import frames_of, play_realtime, silence, simulate

__all__ = ["frames_of", "play_realtime", "silence", "simulate"]
