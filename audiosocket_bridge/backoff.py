"""How long to wait before trying again, after failures: the AMI sink's reconnects, webhook POSTs."""
from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Callable

_MAX_DOUBLINGS = 60  # far past any cap; keeps 2 ** n a float that cannot overflow however long it fails


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff: base_s after the first failure, doubling, at most cap_s. With `jitter`
    each delay is drawn from its upper half, so that bridges retrying together spread."""

    base_s: float = 1.0
    cap_s: float = 300.0
    jitter: bool = True

    def delay_s(self, failures: int, draw: Callable[[], float] = random.random) -> float:
        full_s = min(self.cap_s, self.base_s * 2.0 ** min(max(0, failures - 1), _MAX_DOUBLINGS))
        return full_s * (0.5 + 0.5 * draw()) if self.jitter else full_s
