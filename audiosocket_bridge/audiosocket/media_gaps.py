"""Silence owed to the engine while Asterisk sends no media (pure: the session gives the time).

A ChanSpy leg nobody talks on, hold or silence suppression send nothing; the engine's clock only
moves with audio, so the last utterance before such a gap would be finalised only when media
resumes. Once no audio has come for GAP_FILL_AFTER_S, the gap is owed as silence in real time,
up to GAP_FILL_MAX_S per gap.
"""
from __future__ import annotations

from typing import Optional

from whisper.streaming.pcm import FRAME_MS

GAP_FILL_AFTER_S = 0.3
GAP_FILL_MAX_S = 5.0


class GapFiller:
    def __init__(self, after_s: float = GAP_FILL_AFTER_S, max_s: float = GAP_FILL_MAX_S) -> None:
        self.after_s, self.max_s = after_s, max_s
        self._last_audio_s: Optional[float] = None  # clock time of the last audio frame
        self._filled_s = 0.0  # silence owed since then and already handed out

    def heard_audio(self, now_s: float) -> None:
        self._last_audio_s, self._filled_s = now_s, 0.0

    def silence_due_s(self, now_s: float) -> float:
        """Seconds of silence to give the engine now (0.0 when none); counted as given."""
        if self._last_audio_s is None:  # nothing heard yet: no timeline to keep
            return 0.0
        gap_s = now_s - self._last_audio_s
        if gap_s < self.after_s:
            return 0.0
        due_s = min(gap_s, self.max_s) - self._filled_s
        if due_s < FRAME_MS / 1000:
            return 0.0
        self._filled_s += due_s
        return due_s
