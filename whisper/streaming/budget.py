"""How much of the scheduler's recent time partials took: over their share, they wait for later."""
from __future__ import annotations

import collections
from typing import Deque, Tuple


class PartialBudget:
    def __init__(self, share: float, window_s: float = 2.0):
        self.share, self.window_s = share, window_s
        self._runs: Deque[Tuple[float, float]] = collections.deque()  # (ended at, seconds taken)

    def record(self, ended_at_s: float, took_s: float) -> None:
        self._runs.append((ended_at_s, took_s))

    def spent_s(self, now_s: float) -> float:
        """Seconds partials took among the runs that ended in the last ``window_s``."""
        while self._runs and self._runs[0][0] < now_s - self.window_s:
            self._runs.popleft()
        return sum(took_s for _, took_s in self._runs)

    def exhausted(self, now_s: float) -> bool:
        return self.spent_s(now_s) > self.share * self.window_s
