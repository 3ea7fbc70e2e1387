"""What a decode costs on this machine, and so how often every talking stream can get a partial.

The cost of a window differs 4x between CPUs of one kind of machine (AMX or not) and grows with
the model, so it is measured, not configured: once at start-up (``StreamingEngine.start`` decodes
a warm-up window, which also builds the kernels the first call would otherwise wait for) and then
from every batch the scheduler runs (an exponentially weighted mean of seconds per window).

From it the scheduler spaces partials: N streams talking, each due a partial every T seconds,
cost N x cost_per_window / T of the scheduler's time; kept within the partial budget's share,
T = N x cost_per_window / share, never below the stream's own ``partial_interval_s``. Finals are
never spaced; they always go first. Nor is an utterance's first partial: it tells the caller's
listeners that speech was heard, and each utterance has only one.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

DEFAULT_WINDOW_S = 0.05  # before anything was measured: a short window of tiny.en on a slow CPU


@dataclass
class Capacity:
    smoothing: float = 0.2  # weight of the newest batch in the mean
    window_s: Optional[float] = None  # seconds per decoded window; None until measured

    def record(self, windows: int, took_s: float) -> None:
        if windows <= 0 or took_s <= 0:
            return
        per_window_s = took_s / windows
        if self.window_s is None:
            self.window_s = per_window_s
        else:
            self.window_s += self.smoothing * (per_window_s - self.window_s)

    @property
    def measured(self) -> bool:
        return self.window_s is not None

    def partial_interval_s(self, talking_streams: int, share: float, floor_s: float) -> float:
        """How far apart one stream's partials must be so that all talking streams' partials
        together take at most `share` of the scheduler's time."""
        window_s = self.window_s if self.window_s is not None else DEFAULT_WINDOW_S
        if talking_streams <= 0 or share <= 0:
            return floor_s
        return max(floor_s, talking_streams * window_s / share)
