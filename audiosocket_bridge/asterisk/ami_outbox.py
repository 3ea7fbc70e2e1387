"""What the AMI sink still has to send, kept across AMI outages.

Policy: finals are never dropped. The bound (`max_items`) is enforced by
evicting the oldest queued partial captions; a newer partial of the same
call and segment replaces an older queued one (it is a superset of it).
If only finals remain, the queue grows past the bound and the overflow is
counted (a long AMI outage with many calls); finals are small and rare.
"""
from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass
from typing import Optional


@dataclass
class OutboxItem:
    """Actions sent in order as a unit; `next_index` lets a retry resume mid-way."""

    uuid: str
    actions: list[dict]
    final: bool
    segment: Optional[int] = None
    next_index: int = 0

    @property
    def pending_actions(self) -> list[dict]:
        return self.actions[self.next_index:]


@dataclass
class OutboxStats:
    queued: int = 0
    dropped_partials: int = 0
    superseded_partials: int = 0
    finals_over_bound: int = 0
    max_depth: int = 0


class Outbox:
    """Thread-safe FIFO of OutboxItems with the drop policy above."""

    def __init__(self, max_items: int = 2000) -> None:
        if max_items < 1:
            raise ValueError("max_items must be >= 1")
        self.max_items = max_items
        self.stats = OutboxStats()
        self._items: deque[OutboxItem] = deque()
        self._cond = threading.Condition()

    def __len__(self) -> int:
        with self._cond:
            return len(self._items)

    def put(self, item: OutboxItem) -> None:
        with self._cond:
            if not item.final:
                self._drop_superseded(item)
            self._items.append(item)
            self.stats.queued += 1
            self._enforce_bound()
            self.stats.max_depth = max(self.stats.max_depth, len(self._items))
            self._cond.notify()

    def get(self, timeout_s: float) -> Optional[OutboxItem]:
        """Oldest item, or None after `timeout_s` with nothing queued."""
        with self._cond:
            if not self._items:
                self._cond.wait(timeout_s)
            return self._items.popleft() if self._items else None

    def put_back(self, item: OutboxItem) -> None:
        """Return an item whose sending failed to the front of the queue."""
        with self._cond:
            self._items.appendleft(item)
            self._cond.notify()

    def wake(self) -> None:
        with self._cond:
            self._cond.notify_all()

    def finals_pending(self) -> int:
        with self._cond:
            return sum(1 for item in self._items if item.final)

    def _drop_superseded(self, item: OutboxItem) -> None:
        before = len(self._items)
        self._items = deque(i for i in self._items
                            if i.final or i.next_index or (i.uuid, i.segment) != (item.uuid, item.segment))
        self.stats.superseded_partials += before - len(self._items)

    def _enforce_bound(self) -> None:
        while len(self._items) > self.max_items:
            victim = next((i for i in self._items if not i.final and not i.next_index), None)
            if victim is None:
                self.stats.finals_over_bound += 1
                return
            self._items.remove(victim)
            self.stats.dropped_partials += 1
