"""A progress bar for long inputs: tqdm when it is installed, else one updating line on stderr."""
from __future__ import annotations

import sys
import time
from typing import Any


class NoProgress:
    def __enter__(self) -> "NoProgress":
        return self

    def __exit__(self, *exc: Any) -> None:
        pass

    def update(self, n: int) -> None:
        pass


class LineProgress(NoProgress):
    """``label: 42% (1260/3000 frames)``, rewritten in place at most a few times a second."""

    def __init__(self, total: int, unit: str, stream=None, min_interval_s: float = 0.25):
        # sys.stderr is looked up now, not at import: it may have been replaced since (tests, embedding apps).
        self.total, self.unit, self.stream = max(total, 1), unit, stream or sys.stderr
        self.done, self.min_interval_s, self.last_print_s = 0, min_interval_s, 0.0

    def update(self, n: int) -> None:
        self.done = min(self.total, self.done + max(n, 0))
        now_s = time.monotonic()
        if now_s - self.last_print_s >= self.min_interval_s or self.done == self.total:
            self.last_print_s = now_s
            percent = 100 * self.done // self.total
            self.stream.write(f"\rtranscribing: {percent:3d}% ({self.done}/{self.total} {self.unit})")
            self.stream.flush()

    def __exit__(self, *exc: Any) -> None:
        self.stream.write("\n")
        self.stream.flush()


def progress_bar(total: int, enabled: bool, unit: str = "frames"):
    if not enabled:
        return NoProgress()
    try:
        from tqdm import tqdm
    except ImportError:
        return LineProgress(total, unit)
    return tqdm(total=total, unit=unit)
